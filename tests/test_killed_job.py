"""kill -9 of a measurement mid-sweep leaves nothing a later stage could read as a result; a rerun completes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_kill_9_mid_sweep_leaves_no_result_and_rerun_completes(tiny_model, tmp_path):
    from conftest import TINY_ARCH

    cfg = {
        "models": {"m": {"source": "local", "path": str(tiny_model), "dtype": "float32"}},
        "workloads": {"w": {"file": "w.csv", "input_column": "i", "output_column": "o"}},
        "bins": {"input": [32, 64], "output": [8, 16]},
        "measurement": {"warmup_batches": 0, "repeats": 2, "min_window_s": 0.3, "idle_s": 0.1, "pause_s": 0,
                        "prompts": "random",
                        "examples_per_point": 0, "examples_per_point_large_batch": 0, "batch_size": 2,
                        "sweep_batch_sizes": [1], "sweep_input_lengths": [32], "sweep_output_lengths": [8],
                        "sweep_fixed_input": 32, "sweep_fixed_output": 8},
        "cells": [{"model": "m", "variants": ["transformers-eager"]}],
    }
    assert TINY_ARCH["max_position_embeddings"] >= 80
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "cell.parquet"
    cmd = [sys.executable, "-m", "llm_energy", "measure", "--config", "config.yaml", "--model", "m",
           "--variant", "transformers-eager", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "LLM_ENERGY_LOCK_DIR": str(tmp_path / "locks")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 120
    for line in proc.stderr:  # wait until the sweep is under way, then kill it hard
        seen.append(line)
        if "point 2/" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any("point 2/" in line for line in seen), "".join(seen[-20:])
    assert not out.exists()
    assert not out.with_name("cell.power.parquet").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cell")] == []  # no temporary left
    # The lock died with the process: a rerun is not blocked, and completes the cell.
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    df = pd.read_parquet(out)
    assert (df["status"] == "ok").all() and len(df) == 2 * df[["input_len", "output_len", "batch_size", "role"]] \
        .drop_duplicates().shape[0]  # two repeats of every point (a padded point shares its shape with a grid one)
