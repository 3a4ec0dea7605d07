"""The command line explains itself (#33): help text for every option, the cells of a config, a chosen
subset of a cell's points, overlays merged as Snakemake merges them, the closest name for a misspelt
key, a device lock that says who holds it and how not to wait, steady ETAs, and an energy in the last
line of ``measure``."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from llm_energy import UserError
from llm_energy.__main__ import build_parser, energy_line, parse_points, select_points
from llm_energy.measurement.eta import MAX_STEP, estimate_remaining_s, fit_remaining_s
from llm_energy.measurement.locks import LOCK_TIMEOUT_ENV, device_locks, lock_timeout_from_env
from llm_energy.measurement.protocol import Point
from llm_energy.pipeline import config as cfgmod
from llm_energy.pipeline.cells import DECODINGS

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["detect", "cells", "check-config", "measure", "build-model", "profile", "flops", "lock-state"]


def _cli(*args, cwd=REPO, env=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "llm_energy", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# --- help ------------------------------------------------------------------------------------------------

def test_top_level_help_is_plain_text_naming_every_subcommand():
    proc = _cli("--help")
    assert proc.returncode == 0
    text = proc.stdout
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in text or f"\n    {name}\n" in text, name
    assert "``" not in text and ":func:" not in text  # no reST markup
    assert "{detect," not in text  # argparse's raw choice list
    assert build_parser([])._subparsers._group_actions[0].choices.keys() == set(SUBCOMMANDS)


def test_every_option_of_every_subcommand_has_help_text():
    parser = build_parser([])
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help text"


def test_measure_help_lists_the_choices_and_the_configs_models(tmp_path):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    proc = _cli("measure", "--help")
    assert proc.returncode == 0
    flat = " ".join(proc.stdout.split())
    for decoding in DECODINGS:
        assert decoding in flat
    for variant in ("transformers-eager", "transformers-compile", "vllm-eager", "vllm-cudagraph", "vllm-online"):
        assert variant in flat
    for model in cfg["models"]:
        assert model in flat
    assert "--points" in flat and "--no-wait" in flat and "--lock-timeout" in flat
    # --config changes the models listed
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"models": {"my-own-model": {"source": "build"}}}))
    flat = " ".join(_cli("measure", "--config", str(tmp_path / "other.yaml"), "--help").stdout.split())
    assert "my-own-model" in flat and "tiny-llama" not in flat


# --- cells and points ------------------------------------------------------------------------------------

def test_cells_lists_the_configs_cells_and_their_points():
    cfg = cfgmod.load(REPO / "config.yaml")
    hw = "h100-sxm5-80gb"
    cells = cfgmod.cell_table(cfg, hw)
    proc = _cli("cells", "--hardware", hw, "--points")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    n_points = sum(len(cfgmod.points_of(cfg, c)) for c in cells)
    assert lines[-1] == f"{len(cells)} cells, {n_points} points in all (config.yaml)"
    rows = [ln.split() for ln in lines[1:-1] if not ln.startswith("    ")]
    assert [(r[1], r[2], r[3], int(r[4])) for r in rows] == [
        (c.model, c.variant.name, c.decoding, len(cfgmod.points_of(cfg, c))) for c in cells]
    first = next(ln for ln in lines if ln.startswith("    ")).split()
    assert len(first) == len(cfgmod.points_of(cfg, cells[0]))


def test_points_parse_and_select_with_one_line_for_a_bad_one():
    assert parse_points("64x8x1, 128x16x4") == [(64, 8, 1), (128, 16, 4)]
    for bad in ("64x8", "64x8x0", "axbxc", "64*8*1"):
        with pytest.raises(UserError, match="is not INPUTxOUTPUTxBATCH"):
            parse_points(bad)
    points = (Point(64, 8, 1, "grid"), Point(64, 8, 1, "padded"), Point(128, 8, 4, "grid"))
    assert select_points(points, [(64, 8, 1)], "c") == points[:2]  # plain and padded: both
    with pytest.raises(UserError) as err:
        select_points(points, [(64, 8, 1), (256, 8, 1)], "m/transformers-eager/greedy")
    assert str(err.value) == ("--points: 256x8x1 is not one of the 3 points of cell m/transformers-eager/greedy "
                              "(list them: python -m llm_energy cells --points)")


def test_measure_points_needs_out_and_a_known_shape(tmp_path):
    proc = _cli("measure", "--model", "tiny-llama", "--variant", "transformers-eager", "--points", "64x8x1")
    assert proc.returncode == 1 and proc.stderr.startswith("error: --points measures part of the cell: name "
                                                           "its file with --out"), proc.stderr
    proc = _cli("measure", "--model", "tiny-llama", "--variant", "transformers-eager", "--points", "3x3x3",
                "--out", str(tmp_path / "x.parquet"))
    assert proc.returncode == 1 and "3x3x3 is not one of the" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("measure", "--model", "no-such", "--variant", "transformers-eager", "--out", str(tmp_path / "y"))
    assert proc.returncode == 1 and "choose one of tiny-llama" in proc.stderr, proc.stderr
    proc = _cli("measure", "--model", "tiny-llama", "--variant", "transformers-eager", "--decoding", "nucleus",
                "--out", str(tmp_path / "y"))
    assert proc.returncode == 1 and proc.stderr.strip().endswith(", ".join(DECODINGS)), proc.stderr
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "y").exists()


def test_measure_chosen_points_generates_and_prints_the_energy(tiny_model, tmp_path):
    cfg = {
        "models": {"m": {"source": "local", "path": str(tiny_model), "dtype": "float32"}},
        "workloads": {"w": {"file": "w.csv", "input_column": "i", "output_column": "o"}},
        "bins": {"input": [32, 64], "output": [8, 16]},
        "measurement": {"warmup_batches": 0, "repeats": 1, "min_window_s": 0.1, "idle_s": 0.1, "pause_s": 0,
                        "prompts": "random", "examples_per_point": 0, "examples_per_point_large_batch": 0,
                        "batch_size": 2, "sweep_batch_sizes": [1], "sweep_input_lengths": [32],
                        "sweep_output_lengths": [8], "sweep_fixed_input": 32, "sweep_fixed_output": 8},
        "cells": [{"model": "m", "variants": ["transformers-eager"]}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "two.parquet"
    proc = _cli("measure", "--model", "m", "--variant", "transformers-eager", "--points", "32x8x2,64x16x2",
                "--out", str(out), cwd=tmp_path, env={"LLM_ENERGY_LOCK_DIR": str(tmp_path / "locks")},
                timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_parquet(out)
    assert set(zip(df["input_len"], df["output_len"], df["batch_size"])) == {(32, 8, 2), (64, 16, 2)}
    assert (df["status"] == "ok").all() and (df["energy_j"] > 0).all()
    assert (df["output_tokens"] == df["output_len"] * df["batch_size"]).all()  # real tokens, each batch's
    last = proc.stdout.strip().splitlines()[-1]
    assert last == energy_line(df, str(out)), last
    n = df.groupby(["input_len", "output_len", "batch_size", "role"]).ngroups  # a shape plain and padded: 2
    assert n >= 2 and f"({n} points); energy (cpu-estimate): " in last and " J metered in all" in last


def test_energy_line_counts_a_shared_prefill_once():
    df = pd.DataFrame({"status": ["ok", "ok", "error"], "energy_source": ["cpu-estimate"] * 3,
                       "input_len": [64, 64, 128], "output_len": [8, 16, 8], "batch_size": [1, 1, 1],
                       "role": ["grid", "grid", "grid"], "energy_j": [2.0, 4.0, np.nan],
                       "n_batches_in_window": [3, 2, 0], "prefill_energy_j": [0.5, 0.5, np.nan],
                       "n_prefill_batches_in_window": [4, 4, 0], "prefill_output_len": [8, 8, 8]})
    line = energy_line(df, "f.parquet")
    # 2*3 + 4*2 full windows, and the one prefill window (of the output-8 row) 0.5*4
    assert line == ("f.parquet: 3 rows, 2 of them ok (2 points); energy (cpu-estimate): 16 J metered in all, "
                    "per point median 3 J per batch (2 to 4 J)")
    assert energy_line(df.iloc[2:], "f").endswith("no point ran, so no energy")


# --- check-config --------------------------------------------------------------------------------------

def test_check_config_merges_overlays_as_snakemake_does(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"measurement": {"repeats": 5}}))
    b.write_text(yaml.safe_dump({"measurement": {"repeats": 7}, "bins": {"input": [64, 128]}}))
    proc = _cli("check-config", str(a), str(b))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"config.yaml + {a} + {b}: ok (")
    merged = cfgmod.load_overlays([a, b], REPO / "config.yaml")
    base = cfgmod.load(REPO / "config.yaml")
    assert merged["measurement"]["repeats"] == 7  # the last file wins
    assert merged["bins"]["input"] == [64, 128]  # lists replaced, not appended
    assert merged["bins"]["output"] == base["bins"]["output"]  # mappings merged key by key
    assert merged["models"] == base["models"]
    # the overlay alone is not a config; --no-base says so in one line
    proc = _cli("check-config", "--no-base", str(a))
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and "required" in proc.stderr
    # the base named again is not merged twice (and not named twice)
    proc = _cli("check-config", "config.yaml", str(a))
    assert proc.returncode == 0 and proc.stdout.startswith(f"config.yaml + {a}: ok (")


def test_a_misspelt_key_gets_the_closest_name(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({"measurement": {"repeatz": 2}}))
    proc = _cli("check-config", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: config error: unknown key 'repeatz' in measurement; did you mean "
                                     "'repeats'?")
    bad.write_text(yaml.safe_dump({"zzzqqq": 1}))
    line = _cli("check-config", str(bad)).stderr.strip()
    assert "allowed keys:" in line and "'zzzqqq'" in line  # nothing close: the list


# --- the device lock ---------------------------------------------------------------------------------------

def test_a_busy_device_fails_at_once_with_who_holds_it_and_for_how_long(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0")
    with device_locks(["cpu-vm"]):
        # another process, as a second job would be
        code = ("from llm_energy.measurement.locks import device_locks\n"
                "from llm_energy import UserError\n"
                "try:\n    with device_locks(['cpu-vm']): print('took it')\n"
                "except UserError as e: print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO / "scripts")},
                             capture_output=True, text=True, timeout=60).stdout.strip()
    assert out.startswith(f"device cpu-vm is being measured by pid {os.getpid()} (")
    assert f"in {os.getcwd()}, which has held it for " in out and " UTC)" in out
    assert "gave up at once (lock timeout 0 s, set by --no-wait, --lock-timeout or LLM_ENERGY_LOCK_TIMEOUT)" in out
    with device_locks(["cpu-vm"], timeout_s=0):  # free again
        pass


def test_a_waiting_cell_says_how_to_fail_instead_and_gives_up_after_its_timeout(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(tmp_path))
    held, release = threading.Event(), threading.Event()

    def holder():
        fd = os.open(tmp_path / "gpu-0.lock", os.O_RDWR | os.O_CREAT, 0o666)
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"pid 1 (someone) in /elsewhere since 2026-01-01T00:00:00Z\n")
        held.set()
        release.wait(30)
        os.close(fd)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    try:
        caplog.set_level("INFO")
        t0 = time.monotonic()
        with pytest.raises(UserError) as err:
            with device_locks(["gpu-0"], poll_s=0.05, timeout_s=0.3, report_s=0.1):
                pass
        assert 0.3 <= time.monotonic() - t0 < 5
    finally:
        release.set()
        t.join()
    assert str(err.value).startswith("device gpu-0 is being measured by pid 1 (someone) in /elsewhere, which has "
                                     "held it for ")
    assert "(since 2026-01-01 00:00:00 UTC)" in str(err.value) and "gave up after waiting 0 s" in str(err.value)
    text = caplog.text
    assert "to fail instead: python -m llm_energy measure --no-wait or --lock-timeout SECONDS" in text
    assert "still waiting for device gpu-0" in text


@pytest.mark.parametrize("raw, expect", [("", None), ("0", 0.0), ("90", 90.0), ("-1", "error"), ("soon", "error"),
                                         ("nan", "error")])
def test_lock_timeout_variable(monkeypatch, raw, expect):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, raw)
    if expect == "error":
        with pytest.raises(UserError, match="must be a number of seconds"):
            lock_timeout_from_env()
    else:
        assert lock_timeout_from_env() == expect


def test_lock_timeout_option_is_checked_before_anything_loads(tmp_path):
    proc = _cli("measure", "--model", "tiny-llama", "--variant", "transformers-eager", "--lock-timeout", "-5",
                "--out", str(tmp_path / "z.parquet"))
    assert proc.returncode == 1 and proc.stderr.strip() == "error: --lock-timeout must be 0 or more seconds, got -5"
    proc = _cli("measure", "--model", "tiny-llama", "--variant", "transformers-eager", "--no-wait",
                "--lock-timeout", "5")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


# --- ETA ---------------------------------------------------------------------------------------------------

def test_eta_total_moves_at_most_max_step_from_point_to_point():
    rng = np.random.default_rng(0)
    # a cell's points smallest first: the first few are short and noisy, the last long
    cost = [(float(8 * 2 ** (k // 4)), float(64 * 2 ** k)) for k in range(16)]
    times = [0.5 + 0.002 * s + 1e-6 * t + rng.uniform(0, 0.5) for s, t in cost]
    totals = []
    for j in range(1, len(times)):
        left = estimate_remaining_s(cost[:j], times[:j], cost[j:])
        assert left >= 0
        totals.append(sum(times[:j]) + left)
    steps = [b / a for a, b in zip(totals, totals[1:])]
    assert max(steps) <= MAX_STEP + 1e-9 and min(steps) >= 1 / MAX_STEP - 1e-9
    # the unsteadied fit jumps more on the same times (what the steadying is for)
    raw = [sum(times[:j]) + fit_remaining_s(cost[:j], times[:j], cost[j:]) for j in range(1, len(times))]
    assert max(max(b / a, a / b) for a, b in zip(raw, raw[1:])) > MAX_STEP
    assert estimate_remaining_s([], [], cost) is None and estimate_remaining_s(cost, times, []) == 0.0
