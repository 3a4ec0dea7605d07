"""Rule tables: workload statistics and estimated workload energy as LaTeX."""

import json

import pandas as pd

from llm_energy.rulekit import run_rule
from llm_energy.tables import table_estimates, table_workloads


def main(sm):
    stats = {w: json.loads(open(p).read()) for w, p in zip(sm.params.workloads, sm.input.stats)}
    table_workloads(stats, sm.output.workloads)
    table_estimates(pd.read_parquet(sm.input.estimates), pd.read_parquet(sm.input.savings), sm.output.estimates)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
