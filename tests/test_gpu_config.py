"""The shipped GPU configuration (config/paper-gpu.yaml): valid, the paper's protocol, every figure's
cells, and planned by a dry run on this CPU machine for an H100 node.

A dry run for hardware this machine is not plans another machine's run and measures nothing, so
it is not refused (``PLANNING_ELSEWHERE`` in workflow/common.smk); a real run still is.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from llm_energy.pipeline import config as config_mod

REPO = Path(__file__).resolve().parents[1]
GPU_CONFIG = REPO / "config" / "paper-gpu.yaml"
HW = "h100-80gb-hbm3"

# (model, variant, decoding) of every cell the paper's figures need, and their point families.
EXPECTED_CELLS = {
    **{("llama-3.1-8b", v, "greedy"): ("grid", "sweep") for v in ("transformers-eager", "vllm-eager")},
    # Table 4's optimized stack, as the paper's: vLLM with CUDA graphs (its batch points for Figure 5 too)
    ("llama-3.1-8b", "vllm-cudagraph", "greedy"): ("grid", "sweep", "batch"),
    **{("llama-3.1-8b", v, d): ("batch",) for v in ("transformers-eager", "vllm-eager")
       for d in ("beam", "temperature", "top-p", "speculative")},
    **{("llama-3.1-8b", v, "greedy"): ("batch",) for v in ("transformers-compile", "vllm-online",
                                                          "vllm-cudagraph-tp2", "vllm-cudagraph-tp4")},
    **{(m, v, "greedy"): ("batch",) for m in ("olmo-1b", "olmoe-1b-7b") for v in ("transformers-eager", "vllm-eager")},
}
# Jobs this configuration decides (the rest - figures, tables - follow the workflow's own registry).
# One replay job per (grid cell, workload): 3 grid cells, all 7 workloads (replay.workloads: null).
EXPECTED_JOBS = {"measure_cell": 19, "check_cell": 19, "download_model": 4, "replay_cell": 3 * 7, "validate_cell": 3,
                 "serve_cell": 1, "profile_workload": 7, "bin_workload": 7, "estimate": 1}


def test_paper_gpu_config_is_valid_and_holds_the_papers_protocol():
    raw = yaml.safe_load(GPU_CONFIG.read_text())
    cfg = config_mod.validate(raw)
    schema = config_mod.load_schema()["properties"]
    bins = schema["bins"]["properties"]
    assert cfg["bins"]["input"] == bins["input"]["default"] == [2 ** k for k in range(4, 14)]
    assert cfg["bins"]["output"] == bins["output"]["default"] == [2 ** k for k in range(3, 10)]
    m, defaults = cfg["measurement"], schema["measurement"]["properties"]
    for key in ("warmup_batches", "repeats", "examples_per_point", "examples_per_point_large_batch", "min_window_s"):
        assert m[key] == defaults[key]["default"], key
    assert (m["warmup_batches"], m["repeats"], m["examples_per_point"], m["min_window_s"]) == (20, 3, 1024, 5.0)
    assert m["max_batch_probe"] == m["sweep_batch_sizes"] == [2 ** k for k in range(11)]
    assert max(m["sweep_input_lengths"]) == 32768 and max(m["sweep_output_lengths"]) == 4096
    assert m["meter"] == "nvml" and m["require_measured_energy"]
    assert {s["source"] for s in cfg["models"].values()} == {"hub"}
    assert cfg["models"]["llama-3.1-8b"]["draft_model"] == "llama-3.2-1b"
    assert dict(config_mod.cell_kinds(cfg)) == EXPECTED_CELLS
    # The random-weight fallback the comments describe names shipped architectures.
    for name in re.findall(r"architecture_file: ([\w.-]+)", GPU_CONFIG.read_text()):
        assert (REPO / "workflow" / "architectures" / f"{name}.json").is_file(), name


def test_every_key_config_yaml_sets_is_set_again():
    """Snakemake deep-merges --configfile into config.yaml: a key this file leaves out would keep the
    CPU default's (shortened) value."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    gpu = yaml.safe_load(GPU_CONFIG.read_text())
    for section in ("measurement", "validation", "replay", "decoding", "online", "bins"):
        missing = set(default.get(section, {})) - set(gpu[section])
        assert not missing, f"{section}: {sorted(missing)}"
    assert set(gpu["workloads"]) >= set(default["workloads"])


def _copy_workflow(dest: Path) -> Path:
    """The workflow without results or data, so that nothing this checkout ran changes the plan."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    for folder in ("workflow", "envs", "config", "scripts/rules"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)
    (dest / "paper").mkdir()
    shutil.copy(REPO / "paper" / "main.tex", dest / "paper" / "main.tex")
    return dest


def _dry_run(workdir: Path, *extra: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/paper-gpu.yaml",
                           "--config", f"hardware={HW}", *extra], cwd=workdir, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    out = proc.stdout + "\n" + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def _job_stats(out: str) -> dict[str, int]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"job\s+count", line))
    stats = {}
    for line in lines[start + 2:]:
        name, count = line.split()
        stats[name] = int(count)
        if name == "total":
            return stats
    raise AssertionError("no total in the job stats")


def _planned_cells(out: str) -> set[tuple[str, str, str]]:
    found = re.findall(rf"rule measure_cell:\n(?:    .*\n)*?    output: results/measurements/{HW}/([^/]+)/([^/]+)/"
                       r"([^/,]+)\.parquet", out)
    return set(found)


def test_a_dry_run_here_plans_the_gpu_experiment_for_an_h100_node(tmp_path):
    out = _dry_run(_copy_workflow(tmp_path))
    stats = _job_stats(out)
    assert {k: stats.get(k, 0) for k in EXPECTED_JOBS} == EXPECTED_JOBS
    assert stats["total"] == sum(v for k, v in stats.items() if k != "total")
    assert _planned_cells(out) == set(EXPECTED_CELLS)
    # config.yaml's own models stay in the merged config: built (seconds on CPU), measured by no cell.
    assert stats.get("build_model", 0) == 4
    assert not re.search(r"output: results/measurements/[^/]+/tiny-", out)


def test_read_alone_the_gpu_config_builds_nothing_it_does_not_measure(tmp_path):
    stats = _job_stats(_dry_run(_copy_workflow(tmp_path), "--replace-workflow-config"))
    assert {k: stats.get(k, 0) for k in EXPECTED_JOBS} == EXPECTED_JOBS
    assert "build_model" not in stats


def test_a_real_run_for_that_node_is_still_refused_here(tmp_path):
    """Only the dry run may name another machine: running it here stops before any job, in one line."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/paper-gpu.yaml",
                           "--config", f"hardware={HW}"], cwd=_copy_workflow(tmp_path), capture_output=True,
                          text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1
    assert f"hardware: '{HW}' is not this machine" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()
