"""Rule estimate: binned whole-workload energy for every workload and every measured cell."""

import json

import pandas as pd

from llm_energy.estimate import CELL_KEYS, workload_estimate
from llm_energy.io import write_parquet
from llm_energy.rulekit import run_rule


def main(sm):
    rows, per_bin = [], []
    cells = [pd.read_parquet(p) for p in sm.input.measurements]
    for workload, bins_path, summary_path in zip(sm.params.workloads, sm.input.bins, sm.input.summaries):
        bins = pd.read_parquet(bins_path)
        summary = json.loads(open(summary_path).read())
        for m in cells:
            labels = {k: m[k].iloc[0] for k in CELL_KEYS}
            row, detail = workload_estimate(bins, summary, m, sm.params.batch_size)
            rows.append({"workload": workload, **labels, **row})
            per_bin.append(detail.assign(workload=workload, **labels))
    write_parquet(pd.DataFrame(rows), sm.output.estimates)
    write_parquet(pd.concat(per_bin, ignore_index=True), sm.output.by_bin)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
