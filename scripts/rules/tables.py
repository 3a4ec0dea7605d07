"""Rule tables: traces (1), tasks (2), binning (3) and workload energy (4) as LaTeX with CSV beside."""

import json

import pandas as pd

from llm_energy.rulekit import run_rule
from llm_energy.tables import table_bins, table_estimates, table_tasks, table_workloads


def _load(paths, names):
    return {n: json.loads(open(p).read()) for n, p in zip(names, paths)}


def main(sm):
    stats = _load(sm.input.stats, sm.params.workloads)
    kinds = dict(zip(sm.params.workloads, sm.params.kinds))
    table_workloads({w: s for w, s in stats.items() if kinds[w] == "trace"}, sm.output.traces)
    table_tasks({w: s for w, s in stats.items() if kinds[w] == "task"}, sm.output.tasks)
    table_bins(_load(sm.input.bins, sm.params.workloads), sm.output.bins)
    table_estimates(pd.read_parquet(sm.input.estimates), pd.read_parquet(sm.input.savings), sm.output.estimates)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
