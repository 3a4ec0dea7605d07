"""The SLURM profile: dry runs that show how jobs map to a cluster, and a real run on a one-node cluster.

The live test starts a throw-away SLURM cluster on this machine (tests/slurm_cluster.py; root, and
Debian's packages, installed when missing), runs a reduced pipeline through
`snakemake --profile workflow/profiles/slurm` with the two settings a cluster without an accounting
database needs, and checks that every non-local job went through sbatch (its SLURM log exists),
that the outputs hold the right numbers (tests/check_outputs.py, as the local end-to-end test), and
that profiles and bins equal a local run's. README: "Running on a SLURM cluster" is this test.
"""

import json
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
from pipeline_configs import AZURE_CODE, BINS, BURSTGPT, MEASUREMENT, TINY_MODEL, snakemake_cores, wmt14

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
# What a cluster without an accounting database (slurmdbd) needs: no account, status from squeue.
NO_ACCOUNTING = ["--slurm-no-account", "--slurm-status-command", "squeue"]

TINY = {
    "models": {"m1": TINY_MODEL},
    # A task too (tokenized with the built model's tokenizer), so that every figure has data.
    "workloads": {"burstgpt": BURSTGPT, "azure_code_2023": AZURE_CODE, "wmt14": wmt14(20)},
    "bins": BINS,
    "measurement": MEASUREMENT,
    "replay": {"enabled": False},
    "validation": {"max_cv": 5.0},
    "comparisons": [],
    # vLLM's CPU build: its sweep rows fill Figure 2, which the output check reads.
    "cells": [{"model": "m1", "variants": ["vllm-eager"]}],
}
# Rules that run as SLURM jobs; the others are localrules (cheap, run on the submitting host).
CLUSTER_RULES = {"build_model", "measure_cell"}


def copy_workflow(dest: Path) -> Path:
    """Snakefile, workflow/ (with the profile), envs/, the rule scripts and paper/main.tex; data linked in."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    shutil.copytree(REPO / "workflow", dest / "workflow", ignore=ignore)
    shutil.copytree(REPO / "envs", dest / "envs")
    (dest / "paper").mkdir(exist_ok=True)
    shutil.copy(REPO / "paper" / "main.tex", dest / "paper" / "main.tex")
    shutil.copytree(REPO / "scripts" / "rules", dest / "scripts" / "rules", ignore=ignore)
    (dest / "config.yaml").write_text(yaml.safe_dump(TINY))
    shared_data.link_raw(dest / "data" / "raw")
    return dest


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout, env={**(env or os.environ), "VLLM_CPU_KVCACHE_SPACE": "1"})


def job_resources(dry_run_output: str, rule: str) -> dict[str, str]:
    """The resources line of a rule's job in a dry run, as a dict."""
    block = dry_run_output.split(f"rule {rule}:", 1)[1]
    line = re.search(r"^\s+resources: (.*)$", block, flags=re.M).group(1)
    return dict(item.split("=", 1) for item in line.split(", "))


def fake_login_node(tmp_path: Path) -> dict:
    """PATH with an `sbatch` that must not be called: a submit host, as seen by a dry run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'a dry run must not submit' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_profile_sends_gpu_cells_to_gpu_partition_with_whole_gpus(tmp_path, shared):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    work = copy_workflow(tmp_path / "wf")
    # On a login node without the GPU, the run names the nodes' hardware.
    proc = snakemake(work, "-n", "--profile", str(PROFILE), "--config", "hardware=h100-80gb-hbm3",
                     env=fake_login_node(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = job_resources(proc.stdout, "measure_cell")
    assert res["slurm_partition"] == "gpu" and res["gpu_model"] == "h100"
    assert res["gpu"] == "1", "the rule asks for its GPUs (resources: gpu=<tensor-parallel size>)"
    assert re.search(r"rule measure_cell:(?:(?!\nrule ).)*threads: 8\n", proc.stdout, flags=re.S)
    assert int(res["mem_mb"]) >= 32000 and res.get("slurm_extra", "") == ""
    assert "wildcards: hardware=h100-80gb-hbm3" in proc.stdout
    build = job_resources(proc.stdout, "build_model")
    assert build["slurm_partition"] == "cpu" and "gpu_model" not in build


def test_profile_sends_cpu_cells_to_cpu_partition_alone_on_a_node(tmp_path, shared):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(work, "-n", "--profile", str(PROFILE))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = job_resources(proc.stdout, "measure_cell")
    assert res["slurm_partition"] == "cpu" and res["slurm_extra"] == "--exclusive" and res["gpu_model"] == ""
    assert res.get("gpu", "0") == "0"


def skip_or_fail(reason: str):
    """.ci/run sets LLM_ENERGY_REQUIRE_SLURM=1: there the live cluster test must run, not skip."""
    if os.environ.get("LLM_ENERGY_REQUIRE_SLURM") == "1":
        pytest.fail(f"LLM_ENERGY_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import slurm_cluster

    if os.geteuid() != 0:
        skip_or_fail("a throw-away SLURM cluster needs root")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        skip_or_fail("the executor plugin is missing: "
                     "pip install --no-deps -r workflow/profiles/slurm/requirements.txt")
    with slurm_cluster.slurm_cluster(tmp_path_factory.mktemp("slurm")) as c:
        yield c


@pytest.mark.slow
def test_pipeline_runs_on_a_live_slurm_cluster(cluster, tmp_path, shared):
    work = copy_workflow(tmp_path / "slurm-run")
    proc = snakemake(work, "--profile", str(PROFILE), *NO_ACCOUNTING, "--slurm-keep-successful-logs",
                     "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
                     env=cluster.env, timeout=480)
    assert proc.returncode == 0, (proc.stdout[-2000:] + proc.stderr[-5000:] + "\n" + cluster.log_tail("slurmctld"))

    # Every cluster job went through sbatch: one SLURM log per job, and the job ran its rule.
    logs = {p.relative_to(work / ".snakemake/slurm_logs").parts[0]: p
            for p in (work / ".snakemake/slurm_logs").rglob("*.log")}
    assert {f"rule_{r}" for r in CLUSTER_RULES} <= set(logs), sorted(logs)
    submitted = dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", proc.stderr))
    assert sorted(submitted.values()) == sorted(CLUSTER_RULES), proc.stderr[-3000:]
    # The measurement job had its node to itself, on the CPU partition (a CPU cell; see the profile).
    measure_job = next(j for j, r in submitted.items() if r == "measure_cell")
    info = cluster.run("scontrol", "show", "job", measure_job).stdout
    assert "Partition=cpu" in info and "OverSubscribe=NO" in info and "JobState=COMPLETED" in info, info
    for rule in CLUSTER_RULES:
        text = logs[f"rule_{rule}"].read_text()
        assert f"rule {rule}:" in text and "steps (100%) done" in text, text[-2000:]

    # The numbers hold, as in the local end-to-end test.
    summary = check(work)
    assert summary["cells"] == 1 and summary["estimates"] == 3
    manifest = json.loads((work / "results/manifest.json").read_text())
    assert manifest["hardware"]["in_results"] == [manifest["hardware"]["this_machine"]]

    # Profiles and bins are deterministic: equal to a local run's.
    local = copy_workflow(tmp_path / "local-run")
    targets = [f"results/{kind}/{w}.{ext}" for w in TINY["workloads"]
               for kind, ext in (("profile", "parquet"), ("profile", "stats.json"), ("bins", "parquet"),
                                 ("bins", "summary.json"))]
    proc = snakemake(local, "--cores", snakemake_cores(), *targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for target in targets:
        a, b = work / target, local / target
        if target.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
        else:
            assert json.loads(a.read_text()) == json.loads(b.read_text()), target
