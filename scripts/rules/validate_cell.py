"""Rule validate_cell: the binned estimate and the energy model against the cell's metered replays."""

from pathlib import Path

import pandas as pd

from llm_energy.estimates.replay import validate
from llm_energy.modelling.energy_model import context_length
from llm_energy.pipeline.io import write_parquet
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    w = sm.wildcards
    name = f"{w.hardware}/{w.model}/{w.variant}/{w.decoding}"
    replays = pd.concat([pd.read_parquet(f) for f in sm.input.replay], ignore_index=True)  # one file a workload
    table = validate(replays, pd.read_parquet(sm.input.measurements),
                     sm.params.input_edges, sm.params.output_edges,
                     context_len=context_length(Path(sm.input.model) / "config.json"), name=name)
    write_parquet(table, sm.output[0])


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
