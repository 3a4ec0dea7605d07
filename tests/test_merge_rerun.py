"""Protecting measurements, merging other machines' measurements, and the run's provenance manifest.

A copy of the session's small pipeline run (one transformers cell, one trace; ``one_cell_run``), so
that its scripts can be edited the way a user edits a figure script:
- editing a figure or aggregation script re-plans those rules and never a measurement;
- the manifest records the commit, the config hash, this machine and every measurement file;
- a measurement folder of another hardware copied into results/measurements/ is checked,
  estimated and plotted beside this machine's, and never measured here (read from the session's
  ``merged_run``, the reliability cases' base, instead of merging a second time).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_configs import ONE_CELL, jobs_planned, snakemake_cores

from llm_energy.pipeline.config import load as load_config
from llm_energy.pipeline.manifest import build_manifest, config_hash, file_sha256, package_versions

REPO = Path(__file__).resolve().parents[1]

def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Snakemake in the workflow copy; the package comes from the install (this checkout), so that the
    manifest records this checkout's commit."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", snakemake_cores(), *args], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout, env={**env, "VLLM_CPU_KVCACHE_SPACE": "1"})


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, one_cell_run):
    """A copy of the session's finished small run (``ONE_CELL``: Snakefile, workflow/, envs/, scripts/,
    paper/main.tex, the shared data linked in), whose scripts these tests edit."""
    d = tmp_path_factory.mktemp("merge") / "wf"
    shutil.copytree(one_cell_run, d, symlinks=True)
    assert yaml.safe_load((d / "config.yaml").read_text()) == ONE_CELL
    return d


def this_hardware_of(run: Path, copied: str) -> str:
    (hw,) = [p.name for p in (run / "results/measurements").iterdir() if p.name != copied]
    return hw


# --- the manifest as a unit ---------------------------------------------------------------------

def test_config_hash_ignores_key_order_and_sees_values():
    a = {"bins": {"input": [1, 2]}, "seed": 0}
    assert config_hash(a) == config_hash({"seed": 0, "bins": {"input": [1, 2]}})
    assert config_hash(a) != config_hash({"seed": 1, "bins": {"input": [1, 2]}})


def test_package_versions_of_this_environment():
    versions = package_versions()
    assert versions["numpy"] == "2.3.5" and versions["snakemake"] == "9.27.1"
    assert package_versions(["no-such-package-xyz"]) == {"no-such-package-xyz": None}


def test_manifest_of_a_measurement_file(tmp_path):
    table = tmp_path / "greedy.parquet"
    pd.DataFrame({"hardware": ["a100-sxm4-40gb"] * 2, "model": "m", "variant": "vllm-eager", "decoding": "greedy",
                  "torch_version": "2.14.0", "energy_j": [1.0, 2.0],
                  "start_time": ["2026-01-02T00:00:00", "2026-01-01T00:00:00"]}).to_parquet(table)
    m = build_manifest({"seed": 0}, "cpu-x", [table])
    (cell,) = m["measurements"]
    assert cell["hardware"] == "a100-sxm4-40gb" and cell["torch_version"] == "2.14.0" and cell["n_rows"] == 2
    assert cell["sha256"] == file_sha256(table) and cell["start_time"] == "2026-01-01T00:00:00"
    assert m["hardware"]["in_results"] == ["a100-sxm4-40gb"] and m["hardware"]["measured_here"] == "cpu-x"
    assert m["config_sha256"] == config_hash({"seed": 0}) and m["git_commit"]


# --- the pipeline ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_manifest_records_the_run(small_run):
    from llm_energy.pipeline.hardware import detect

    m = json.loads((small_run / "results/manifest.json").read_text())
    assert m["config_sha256"] == config_hash(load_config(small_run / "config.yaml"))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert m["git_commit"].startswith(head)
    assert m["hardware"]["this_machine"] == m["hardware"]["measured_here"] == detect()
    assert m["hardware"]["in_results"] == [detect()]
    assert m["packages"]["numpy"] == "2.3.5" and m["packages"]["transformers"] == "5.19.0"
    (cell,) = m["measurements"]
    path = small_run / cell["file"]
    assert cell["sha256"] == file_sha256(path) and cell["variant"] == "transformers-eager"
    assert cell["n_rows"] == len(pd.read_parquet(path))


@pytest.mark.slow
def test_editing_figure_or_aggregation_scripts_never_remeasures(small_run):
    scripts = {name: small_run / "scripts/rules" / name for name in ("figure.py", "estimate.py")}
    original = {name: p.read_text() for name, p in scripts.items()}
    # Snakemake compares a script's mtime with its outputs' (the `code` trigger): restore both.
    stamps = {name: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for name, p in scripts.items()}
    try:
        scripts["figure.py"].write_text(original["figure.py"] + "\n# a user's edit to a figure script\n")
        planned = jobs_planned(snakemake(small_run, "-n"))
        assert "figure" in planned, planned
        assert not planned & {"measure_cell", "build_model", "check_cell"}, planned
        scripts["estimate.py"].write_text(original["estimate.py"] + "\n# an edit to the aggregation\n")
        planned = jobs_planned(snakemake(small_run, "-n"))
        assert {"estimate", "figure", "table", "manifest"} <= planned, planned
        assert not planned & {"measure_cell", "build_model", "check_cell"}, planned
        # Without the code trigger (README: --rerun-triggers), a script edit re-plans nothing at all.
        assert jobs_planned(snakemake(small_run, "-n", "--rerun-triggers", "mtime", "params", "input")) == set()
    finally:
        for name, p in scripts.items():
            p.write_text(original[name])
            os.utime(p, ns=stamps[name])
    assert jobs_planned(snakemake(small_run, "-n")) == set()


@pytest.mark.slow
def test_copied_hardware_folder_is_merged_and_never_measured(merged_run):
    """The session's merged run (``reliability.merge_run``: this machine's measurement copied in as
    another hardware's at half the energy, planned, then run), read and never written here."""
    from reliability import OTHER_HW
    from reliability import snakemake as reliability_snakemake

    run = merged_run.path
    here = this_hardware_of(run, OTHER_HW)
    planned = jobs_planned(subprocess.CompletedProcess([], merged_run.dry_run.rc, merged_run.dry_run.text, ""))
    assert {"check_cell", "estimate", "figure", "table", "manifest"} <= planned, planned
    assert "measure_cell" not in planned and "build_model" not in planned, planned
    assert merged_run.run.rc == 0 and "measure_cell" not in merged_run.run.text

    est = pd.read_parquet(run / "results/estimates/estimates.parquet").query("method == 'binned'") \
        .set_index(["workload", "hardware"])
    assert set(est.index.get_level_values("hardware")) == {here, OTHER_HW}
    # Same bins, half the energy per batch: half the workload's energy.
    assert est.loc[("burstgpt", OTHER_HW), "energy_j"] == pytest.approx(0.5 * est.loc[("burstgpt", here), "energy_j"])
    fig1 = pd.read_csv(run / "paper/figures/fig1_workload_energy.csv")
    assert set(fig1["hardware"]) == {here, OTHER_HW}
    manifest = json.loads((run / "results/manifest.json").read_text())
    assert manifest["hardware"]["in_results"] == sorted([here, OTHER_HW])
    assert manifest["hardware"]["measured_here"] == here
    # planned again as it was run (the run folder's own package first on the path, reliability.env)
    assert "Nothing to be done" in reliability_snakemake(run, "-n").text
