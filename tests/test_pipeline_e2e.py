"""Snakemake end to end on a tiny config in a temporary folder: the numbers, and what reruns."""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import shared_data
import yaml
from check_outputs import check
from pipeline_configs import AZURE_CODE, BINS, BURSTGPT, MEASUREMENT, TINY_MODEL, jobs_planned, snakemake_cores, wmt14

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

TINY = {
    "models": {"m1": {**TINY_MODEL, "draft_model": "m0"},
               "m0": {"source": "build", "seed": 4,
                      "architecture": {**TINY_MODEL["architecture"], "intermediate_size": 128}}},
    "workloads": {"burstgpt": BURSTGPT, "azure_code_2023": AZURE_CODE, "wmt14": wmt14(50)},
    "bins": BINS,
    "measurement": {**MEASUREMENT, "sweep_input_lengths": [32, 128], "sweep_output_lengths": [4, 16]},
    "replay": {"n_requests": 6, "seed": 1},
    # 0.05 s windows of CPU time (10 ms ticks) are noise by design here; validation has its own tests.
    "validation": {"max_cv": 5.0},
    "cells": [{"model": "m1", "variants": ["transformers-eager", "vllm-eager"]},
              # A batch-only cell with a draft model: measured, checked and plotted, never estimated.
              {"model": "m1", "variants": ["transformers-eager"], "decoding": ["speculative"], "points": ["batch"]}],
}


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                           str(workdir), "--cores", snakemake_cores(), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared):
    from llm_energy.pipeline.hardware import detect

    d = tmp_path_factory.mktemp("run")
    # A spec for this machine, so that the ideal energy is computed and checked too.
    spec = {detect(): {"tdp_w": 10.0, "bf16_dense_tflops": 0.5, "source": "test assumption"}}
    (d / "config.yaml").write_text(yaml.safe_dump({**TINY, "hardware_specs": spec}))
    shared_data.link_raw(d / "data" / "raw")
    proc = snakemake(d)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return d


def test_outputs_hold_the_right_numbers(run_dir, shared):
    summary = check(run_dir)
    assert summary["cells"] == 3 and summary["estimates"] == 6  # the speculative cell has no grid
    spec = pd.read_parquet(run_dir / "results/checked" / f"{detect_slug()}/m1/transformers-eager/speculative.parquet")
    assert set(spec["role"]) == {"sweep"} and (spec["input_len"] == 32).all() and (spec["output_len"] == 4).all()
    assert spec["status"].eq("ok").all() and (spec["num_speculative_tokens"] == 4).all()
    assert spec["draft_model_dir"].str.endswith("models/m0").all()
    est = pd.read_parquet(run_dir / "results/estimates/estimates.parquet").query("method == 'binned'")
    assert est["ideal_energy_j"].notna().all() and (est["pct_above_ideal"] > 0).all()
    assert set(summary["replay_error_pct"]) == {f"{w}/{v}" for w in ("burstgpt", "azure_code_2023", "wmt14")
                                                for v in ("transformers-eager", "vllm-eager")}
    # Counted here with the csv module, independently of the pipeline: non-failed requests with
    # input <= 512 and output <= 64 (the top edges).
    with open(shared / "burstgpt/burstgpt_slice.csv", newline="") as f:
        rows = [(int(r["Request tokens"]), int(r["Response tokens"])) for r in csv.DictReader(f)]
    expected = sum(1 for i, o in rows if o > 0 and i <= 512 and o <= 64)
    assert summary["workloads"]["burstgpt"] == expected


def detect_slug() -> str:
    from llm_energy.pipeline.hardware import detect

    return detect()


def test_second_run_has_nothing_to_do(run_dir):
    proc = snakemake(run_dir, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr


def _planned_jobs(proc: subprocess.CompletedProcess) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans; a job of a rule without wildcards (estimate,
    summary) has the wildcards ''."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    rules = {line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
             if line.startswith(("rule ", "localrule "))}
    return {(rule, w) for rule in rules for w in (planned_wildcards(proc, rule) or [""])}


@pytest.mark.parametrize("edit, expensive", [
    # The protocol: every measurement and every replay (its control points use it), nothing upstream.
    ({"measurement": {"warmup_batches": 2}},
     {("measure_cell", c) for c in ("transformers-eager/greedy", "vllm-eager/greedy",
                                    "transformers-eager/speculative")}
     | {("replay_cell", c) for c in ("transformers-eager/greedy", "vllm-eager/greedy")}),
    # A bin edge: the grid cells' points (not the batch-only cell's) and the binning; a grid measured
    # again is replayed again.
    ({"bins": {"input": [64, 512]}},
     {(rule, c) for rule in ("measure_cell", "replay_cell") for c in ("transformers-eager/greedy",
                                                                       "vllm-eager/greedy")}),
    # A replay key re-runs the replays alone.
    ({"replay": {"runs": 3}},
     {("replay_cell", c) for c in ("transformers-eager/greedy", "vllm-eager/greedy")}),
])
def test_a_protocol_or_bin_edit_replans_exactly_the_metering_jobs_that_read_it(run_dir, tmp_path, edit, expensive):
    # Before the tests below that edit the run (they run in file order, in one worker).
    assert _planned_jobs(snakemake(run_dir, "-n")) == set()
    other = tmp_path / "edit.yaml"
    other.write_text(yaml.safe_dump(edit))
    changed = _planned_jobs(snakemake(run_dir, "-n", "--configfile", str(other)))
    metering = {"measure_cell", "replay_cell", "serve_cell", "build_model", "profile_workload"}
    got = {(rule, "/".join(re.findall(r"(?:variant|decoding)=([^,\s]+)", w))) for rule, w in changed
           if rule in metering}
    assert got == expensive, changed
    assert ("bin_workload" in {r for r, _ in changed}) == ("bins" in edit)


def test_a_workload_added_to_a_finished_run_is_replayed_alone(run_dir, tmp_path):
    """One replay job per (cell, workload): a new trace is profiled, binned and replayed by each grid
    cell; the workloads replayed before are kept and nothing is measured again."""
    added = tmp_path / "added.yaml"
    added.write_text(yaml.safe_dump({"workloads": {"azure_conv_2023": {**AZURE_CODE,
                                                                       "file": "AzureLLMInferenceTrace_conv.csv"}}}))
    changed = _planned_jobs(snakemake(run_dir, "-n", "--configfile", str(added)))
    replays = {re.search(r"variant=([^,\s]+)", w)[1] + "/" + re.search(r"workload=([^,\s]+)", w)[1]
               for rule, w in changed if rule == "replay_cell"}
    assert replays == {"transformers-eager/azure_conv_2023", "vllm-eager/azure_conv_2023"}, changed
    rules = {r for r, _ in changed}
    assert "measure_cell" not in rules and "build_model" not in rules
    assert {"profile_workload", "bin_workload", "validate_cell", "estimate"} <= rules


def test_report_and_paper(run_dir):
    """The browsable report builds from the finished run, and the paper is built or says how to get it."""
    proc = snakemake(run_dir, "--report", "report.html", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (run_dir / "report.html").read_text(errors="replace")
    assert "fig3_decoding.png" in html and "fig6_tensor_parallel.png" in html
    status = (run_dir / "paper/main.pdf.txt").read_text()
    if shutil.which("latexmk"):
        assert status.startswith("paper/main.pdf built")
        assert (run_dir / "paper/main.pdf").read_bytes().startswith(b"%PDF")
    else:
        assert "latexmk not found" in status and "apt-get install latexmk" in status


def test_figure_and_aggregation_changes_never_remeasure(run_dir):
    for f in (run_dir / "paper" / "figures").glob("fig1_workload_energy.*"):
        f.unlink()
    proc = snakemake(run_dir, "-n")
    assert jobs_planned(proc) == {"all", "figure", "paper_pdf"}
    # One job per figure: only Figure 1's is planned again.
    assert planned_wildcards(proc, "figure") == ["figure=fig1_workload_energy"]
    # A changed profile (one request fewer) re-bins and re-estimates, and measures nothing again.
    prof = run_dir / "results/profile/burstgpt.parquet"
    pd.read_parquet(prof).iloc[:-1].to_parquet(prof, index=False)
    planned = jobs_planned(snakemake(run_dir, "-n"))
    assert {"bin_workload", "estimate", "figure", "table"} <= planned
    assert "measure_cell" not in planned and "build_model" not in planned


def planned_wildcards(proc: subprocess.CompletedProcess, rule: str) -> list[str]:
    """The wildcards of each job of ``rule`` in a dry run's listing."""
    found, current = [], None
    for line in proc.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = line.split()[1].rstrip(":")
        elif current == rule and line.strip().startswith("wildcards:"):
            found.append(line.strip().removeprefix("wildcards:").strip())
    return found


def test_cell_for_other_hardware_is_refused_with_a_hint(run_dir):
    target = "results/measurements/h100-80gb-hbm3/m1/transformers-eager/greedy.parquet"
    proc = snakemake(run_dir, target)
    assert proc.returncode != 0
    # Refused when the workflow is read (no rule makes another hardware's file here), in one line.
    assert "but the cell is for 'h100-80gb-hbm3'" in proc.stderr and "Traceback" not in proc.stderr
    assert "Building DAG" not in proc.stdout + proc.stderr
    assert not (run_dir / target).exists()
    assert not (run_dir / "logs/measure/h100-80gb-hbm3").exists()


def test_a_decoding_setting_re_measures_only_its_cells(run_dir):
    """The look-ahead is a parameter of the speculative cell only: greedy cells are not planned again."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["decoding"] = {"num_speculative_tokens": 3, "beam_width": 5}  # no beam cell here
    other = run_dir / "other.yaml"
    other.write_text(yaml.safe_dump(cfg))
    proc = snakemake(run_dir, "-n", "--configfile", str(other))
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured, rule = [], None
    for line in proc.stdout.splitlines():
        if line.startswith("rule "):
            rule = line.split()[1].rstrip(":")
        elif rule == "measure_cell" and line.strip().startswith("wildcards:"):
            measured.append(line.strip())
    assert measured and all("decoding=speculative" in line for line in measured), measured

