"""Rule figures: the paper's figures with their plotted data beside them."""

from pathlib import Path

import pandas as pd

from llm_energy.figures import fig_prefill_decode, fig_workload_energy
from llm_energy.rulekit import run_rule


def main(sm):
    out_dir = Path(sm.output.fig1).parent
    fig_workload_energy(pd.read_parquet(sm.input.estimates), out_dir)
    measurements = pd.concat([pd.read_parquet(p) for p in sm.input.measurements], ignore_index=True)
    fig_prefill_decode(measurements, sm.params.fixed_input, sm.params.fixed_output, out_dir)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
