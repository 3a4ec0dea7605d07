"""Rule figure_replay: binned estimate against the measured replay of the same requests."""

from pathlib import Path

import pandas as pd

from llm_energy.figures import fig_replay_validation
from llm_energy.rulekit import run_rule


def main(sm):
    data = pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True)
    fig_replay_validation(data, Path(sm.output[0]).parent)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
