"""Rule bin_workload: request counts per (input bin, output bin), excluded requests counted."""

import pandas as pd

from llm_energy.paper.figures import fig_distortion
from llm_energy.pipeline.io import write_json, write_parquet
from llm_energy.pipeline.rulekit import run_rule
from llm_energy.workloads.binning import bin_requests, warn_excluded


def main(sm):
    profile = pd.read_parquet(sm.input[0])
    table, summary = bin_requests(profile, sm.params.input_edges, sm.params.output_edges)
    fig_distortion(profile, sm.params.input_edges, sm.params.output_edges, sm.wildcards.workload,
                   sm.output.distortion)
    write_parquet(table, sm.output.table)
    write_json({"workload": sm.wildcards.workload, **summary}, sm.output.summary)
    warn_excluded(sm.wildcards.workload, summary)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
