"""Rule summary: the run's summary (paper/summary.md) and its leaderboard (paper/tables/leaderboard.csv),
from the estimates, bin summaries, profiles, replay validation and findings (llm_energy/paper/summary.py)."""

import json
import logging
from pathlib import Path

import pandas as pd

from llm_energy.paper.summary import summarize
from llm_energy.pipeline.io import atomic_path, write_text
from llm_energy.pipeline.rulekit import run_rule

log = logging.getLogger("llm_energy.paper.summary")


def main(sm):
    bins = {Path(p).name.removesuffix(".summary.json"): json.loads(Path(p).read_text()) for p in sm.input.bins}
    profiles = {Path(p).name.removesuffix(".parquet"): pd.read_parquet(p, columns=["input_tokens", "output_tokens"])
                for p in sm.input.profiles}
    validation = [pd.read_parquet(p) for p in (sm.input.get("validation") or [])]
    board, text = summarize(pd.read_parquet(sm.input.estimates), bins, profiles,
                            pd.concat(validation, ignore_index=True) if validation else None,
                            pd.read_csv(sm.input.findings), pd.read_csv(sm.input.left_out))
    with atomic_path(sm.output.csv) as tmp:
        board.to_csv(tmp, index=False)
    write_text(text, sm.output.md)
    # the page itself is printed once, at the end of the run (the Snakefile's onsuccess)
    log.info("summary written: %s and %s (%d rows)", sm.output.md, sm.output.csv, len(board))


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
