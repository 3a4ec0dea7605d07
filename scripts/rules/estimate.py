"""Rule estimate: binned whole-workload energy for every workload and every measured cell."""

import json
from pathlib import Path

import pandas as pd

from llm_energy.estimate import CELL_KEYS, add_ideal_columns, ideal_energy, savings, workload_estimate
from llm_energy.flops import Arch
from llm_energy.io import write_parquet
from llm_energy.rulekit import run_rule
from llm_energy.specs import load_specs, spec_for


def main(sm):
    rows, per_bin = [], []
    cells = [pd.read_parquet(p) for p in sm.input.measurements]
    archs = {m: Arch.from_file(Path(d) / "config.json") for m, d in zip(sm.params.models, sm.input.model_dirs)}
    specs = load_specs(sm.params.hardware_specs)
    for workload, bins_path, summary_path in zip(sm.params.workloads, sm.input.bins, sm.input.summaries):
        bins = pd.read_parquet(bins_path)
        summary = json.loads(open(summary_path).read())
        for m in cells:
            labels = {k: m[k].iloc[0] for k in CELL_KEYS}
            row, detail = workload_estimate(bins, summary, m)
            row.update(ideal_energy(bins, archs[labels["model"]], spec_for(labels["hardware"], specs)))
            rows.append(add_ideal_columns({"workload": workload, **labels, **row}))
            per_bin.append(detail.assign(workload=workload, **labels))
    estimates = pd.DataFrame(rows)
    write_parquet(estimates, sm.output.estimates)
    write_parquet(savings(estimates, sm.params.comparisons), sm.output.savings)
    write_parquet(pd.concat(per_bin, ignore_index=True), sm.output.by_bin)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
