"""Rule figure_binning: Figure 7, real against binned length distributions."""

from pathlib import Path

import pandas as pd

from llm_energy.figures import fig_binning_cdfs
from llm_energy.rulekit import run_rule


def main(sm):
    profiles = {w: pd.read_parquet(p) for w, p in zip(sm.params.workloads, sm.input)}
    fig_binning_cdfs(profiles, sm.params.input_edges, sm.params.output_edges, Path(sm.output[0]).parent)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
