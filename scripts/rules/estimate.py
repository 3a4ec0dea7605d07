"""Rule estimate: whole-workload energy for every workload and every measured cell, by the paper's
binned method and by the cell's energy model served at true lengths (column ``method``), each with
its facility energy, carbon and cost (config ``carbon:``).

A cell that cannot be estimated (every row invalid, say) is left out with a warning and listed in
``left_out.csv`` beside the estimates; the other cells are still estimated.
"""

import json
import logging
from pathlib import Path

import pandas as pd

from llm_energy.estimates.carbon import CarbonSettings, add_carbon_columns, cell_intensities
from llm_energy.estimates.estimate import estimate_cells, savings
from llm_energy.estimates.specs import specs_for_run
from llm_energy.modelling.energy_model import context_length
from llm_energy.models.flops import Arch
from llm_energy.pipeline.io import write_parquet, write_text
from llm_energy.pipeline.rulekit import run_rule

log = logging.getLogger("estimate")


def main(sm):
    cells = [(p, pd.read_parquet(p)) for p in sm.input.measurements]
    archs = {m: Arch.from_file(Path(d) / "config.json") for m, d in zip(sm.params.models, sm.input.model_dirs)}
    specs = specs_for_run(sm.params.hardware_specs, sm.params.hardware, sm.params.cpu_watts_per_core)
    for hw in sorted({m["hardware"].iloc[0] for _, m in cells} - set(specs.index)):
        log.warning("no spec for hardware %s: its ideal energy stays empty; give one in config.yaml "
                    "hardware_specs: %s: {tdp_w: ..., bf16_dense_tflops: ...}", hw, hw)
    workloads = [(w, pd.read_parquet(b), json.loads(Path(s).read_text()))
                 for w, b, s in zip(sm.params.workloads, sm.input.bins, sm.input.summaries)]
    # The energy model's estimate (method = model) needs the per-request profiles; its systematic error
    # the replay validation tables (absent when replay is off).
    profile_paths = sm.input.get("profiles") or []
    profiles = {w: pd.read_parquet(p) for w, p in zip(sm.params.workloads, profile_paths)} or None
    contexts = {m: context_length(Path(d) / "config.json") for m, d in zip(sm.params.models, sm.input.model_dirs)}
    validation = [pd.read_parquet(p) for p in (sm.input.get("validation") or [])]
    estimates, by_bin, left_out = estimate_cells(
        workloads, cells, archs, specs, profiles=profiles, contexts=contexts,
        validation=pd.concat(validation, ignore_index=True) if validation else None, hardware=sm.params.hardware)
    carbon = CarbonSettings.from_config(sm.params.carbon)
    estimates = add_carbon_columns(estimates, cell_intensities(cells, carbon), carbon)
    write_parquet(estimates, sm.output.estimates)
    write_parquet(savings(estimates, sm.params.comparisons), sm.output.savings)
    write_parquet(by_bin, sm.output.by_bin)
    # Declared as output `left_out` when the workflow names it; else written beside the estimates.
    left_out_path = sm.output.get("left_out") or Path(sm.output.estimates).with_name("left_out.csv")
    write_text(left_out.to_csv(index=False), left_out_path)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
