"""Rule figures: the paper's figures from the measurement and estimate tables, plotted data beside each."""

from pathlib import Path

import pandas as pd

from llm_energy.figures import (fig_compile_graphs, fig_decoding, fig_moe, fig_online, fig_prefill_decode,
                                fig_tasks, fig_tensor_parallel, fig_workload_energy)
from llm_energy.rulekit import run_rule


def main(sm):
    out_dir = Path(sm.output.fig1).parent
    estimates = pd.read_parquet(sm.input.estimates)
    by_bin = pd.read_parquet(sm.input.by_bin)
    fig_workload_energy(estimates, out_dir, by_bin)
    fig_tasks(estimates, list(sm.params.task_workloads), out_dir, by_bin)
    measurements = pd.concat([pd.read_parquet(p) for p in sm.input.measurements], ignore_index=True)
    fi, fo = sm.params.fixed_input, sm.params.fixed_output
    fig_prefill_decode(measurements, fi, fo, out_dir, framework="vllm", name="fig2_prefill_decode")
    fig_prefill_decode(measurements, fi, fo, out_dir, framework="transformers",
                       name="fig10_prefill_decode_transformers")
    fig_decoding(measurements, fi, fo, out_dir)
    fig_moe(measurements, fi, fo, out_dir)
    fig_compile_graphs(measurements, fi, fo, out_dir)
    fig_tensor_parallel(measurements, fi, fo, out_dir)
    fig_online(measurements, fi, fo, out_dir)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
