"""Nothing lost: outputs readable as the umask says, device locks usable by every user of the machine,
a manual measurement that never overwrites a result unasked, a paper status free of absolute paths."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.measurement.locks import device_locks, lock_dir
from llm_energy.pipeline import io as io_mod

REPO = Path(__file__).resolve().parents[1]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- 1. Atomic writes keep the mode of a plain write --------------------------------------------------

WRITE_ALL = """
import json, os, stat, sys
os.umask(int(sys.argv[1], 8))
import pandas as pd
from llm_energy.pipeline.io import atomic_path, current_umask, temp_dir_beside, write_json, write_parquet, write_text
d = sys.argv[2]
write_text("x\\n", d + "/a.txt")
write_json({"a": 1}, d + "/sub/b.json")
write_parquet(pd.DataFrame({"a": [1]}), d + "/c.parquet")
with atomic_path(d + "/d.csv") as tmp:
    pd.DataFrame({"a": [1]}).to_csv(tmp)
with open(d + "/plain.txt", "w") as f:
    f.write("x")
model = temp_dir_beside(d + "/model")
mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
print(json.dumps({"umask": current_umask(), "dir": mode(model), "sub": mode(d + "/sub"),
                  **{n: mode(d + "/" + n) for n in ("a.txt", "sub/b.json", "c.parquet", "d.csv", "plain.txt")}}))
"""


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)],
                         ids=["umask-022", "umask-002"])
def test_atomic_writes_have_the_mode_of_a_plain_write(tmp_path, umask, file_mode, dir_mode):
    """In a subprocess, so that this process's umask stays as it is."""
    proc = subprocess.run([sys.executable, "-c", WRITE_ALL, f"{umask:o}", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    modes = json.loads(proc.stdout)
    assert modes.pop("umask") == umask
    assert modes.pop("dir") == dir_mode and modes.pop("sub") == dir_mode
    assert modes == dict.fromkeys(["a.txt", "sub/b.json", "c.parquet", "d.csv", "plain.txt"], file_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")] == []


def test_umask_without_proc_is_read_and_left_as_it_was(monkeypatch):
    with open("/proc/self/status") as f:
        want = int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)

    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/self/status")

    monkeypatch.setattr(io_mod, "open", no_proc, raising=False)
    assert io_mod.current_umask() == want
    monkeypatch.undo()
    assert io_mod.current_umask() == want


# --- 2. Device locks for every user of the machine ----------------------------------------------------

def test_new_lock_folder_is_shared_like_tmp_and_lock_files_are_0666(tmp_path, monkeypatch):
    folder = tmp_path / "new" / "locks"
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(folder))
    old = os.umask(0o077)  # the narrowest usual umask must not narrow them
    try:
        with device_locks(["GPU-1234", "GPU-5678"], timeout_s=0):
            assert _mode(folder) == 0o1777
            assert sorted(p.name for p in folder.iterdir()) == ["GPU-1234.lock", "GPU-5678.lock"]
            assert {_mode(p) for p in folder.iterdir()} == {0o666}
    finally:
        os.umask(old)
    with device_locks(["GPU-1234"], timeout_s=0):  # an existing file is reused as it is
        assert _mode(folder / "GPU-1234.lock") == 0o666


def test_existing_lock_folder_keeps_its_mode(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(folder))
    assert lock_dir() == folder and _mode(folder) == 0o700


def test_lock_file_that_cannot_be_opened_is_one_line(tmp_path, monkeypatch):
    """Simulated (root bypasses permission checks): os.open refuses every lock file."""
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(tmp_path))
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr("llm_energy.measurement.locks.time.sleep", lambda s: None)
    with pytest.raises(UserError) as err:
        with device_locks(["GPU-a"]):
            pass
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"cannot open device lock {tmp_path / 'GPU-a.lock'}: ")
    assert "set LLM_ENERGY_LOCK_DIR to a folder you can write" in line and "chmod 1777" in line


def test_lock_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(tmp_path / "file" / "locks"))
    with pytest.raises(UserError) as err:
        lock_dir()
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"cannot create the device-lock folder {tmp_path / 'file' / 'locks'} (")
    assert str(err.value).endswith("; set LLM_ENERGY_LOCK_DIR to a folder you can write")


@pytest.fixture
def world_tmp():
    """A folder another user can reach (pytest's own tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="llm-energy-test-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_other_user(fn) -> str:
    """``fn()`` in a forked child as user nobody (or as this user where it is not root): 'ok: ...' or
    'UserError: ...' or 'other: ...'."""
    other = None
    if os.geteuid() == 0:
        import pwd

        try:
            other = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("tests run as root and there is no user 'nobody' to check permissions as")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            if other is not None:
                os.setgroups([])
                os.setgid(other.pw_gid)
                os.setuid(other.pw_uid)
            try:
                out = f"ok: {fn()}"
            except UserError as exc:
                out = f"UserError: {exc}"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = f"other: {exc!r}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def _take(key):
    def fn():
        with device_locks([key], timeout_s=0):
            return "locked"
    return fn


def test_unwritable_lock_folder_as_another_user_is_one_line(world_tmp, monkeypatch):
    folder = world_tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(folder))
    got = _as_other_user(_take("GPU-a"))
    assert got.startswith("UserError: "), got
    assert "\n" not in got
    owner = __import__("pwd").getpwuid(os.getuid()).pw_name
    assert got == (f"UserError: cannot open device lock {folder}/GPU-a.lock: folder {folder} belongs to {owner} "
                   f"with mode 0555, where you cannot create a file; set LLM_ENERGY_LOCK_DIR to a folder you can "
                   f"write, or ask {owner} to run `chmod 1777 {folder}`")


def test_another_users_0644_lock_file_is_one_line(world_tmp, monkeypatch):
    """What an older version left: a 0755 folder and a 0644 lock file of the first user."""
    folder = world_tmp / "old"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "GPU-a.lock").write_text("pid 1\n")
    (folder / "GPU-a.lock").chmod(0o644)
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(folder))
    if os.geteuid() != 0:
        pytest.skip("needs root, to make a lock file of another user")
    got = _as_other_user(_take("GPU-a"))
    owner = __import__("pwd").getpwuid(0).pw_name
    assert got == (f"UserError: cannot open device lock {folder}/GPU-a.lock: it belongs to {owner} with mode 0644, "
                   f"which you cannot write; set LLM_ENERGY_LOCK_DIR to a folder you can write, or ask {owner} to "
                   f"run `chmod 1777 {folder} && chmod 666 {folder}/*.lock`")


def test_second_user_waits_on_and_then_takes_the_first_users_lock(world_tmp, monkeypatch):
    folder = world_tmp / "llm-energy-locks"
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(folder))
    with device_locks(["GPU-a"]):  # this user made the folder and the file, and holds the lock
        got = _as_other_user(_take("GPU-a"))
        assert got.startswith(f"UserError: device GPU-a is being measured by pid {os.getpid()} ("), got
    assert _as_other_user(_take("GPU-a")) == "ok: locked"
    assert _as_other_user(_take("GPU-b")) == "ok: locked"  # and makes new lock files in the shared folder
    assert _mode(folder / "GPU-b.lock") == 0o666
    with device_locks(["GPU-b"], timeout_s=0):  # which the first user can use in turn
        pass


# --- 3. python -m llm_energy measure never overwrites a result unasked ---------------------------------

def _cli(args, cwd, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "LLM_ENERGY_LOCK_DIR": str(cwd / "locks")}
    cmd = [sys.executable, "-m", "llm_energy", "measure", "--model", "m", "--variant", "transformers-eager", *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def _config(tmp_path, model_path) -> dict:
    cfg = {
        "models": {"m": {"source": "local", "path": str(model_path), "dtype": "float32"}},
        "workloads": {"w": {"file": "w.csv", "input_column": "i", "output_column": "o"}},
        "bins": {"input": [32, 64], "output": [8, 16]},
        "measurement": {"warmup_batches": 0, "repeats": 1, "min_window_s": 0.1, "idle_s": 0.1, "pause_s": 0,
                        "prompts": "random", "examples_per_point": 0, "examples_per_point_large_batch": 0,
                        "batch_size": 1, "sweep_batch_sizes": [1], "sweep_input_lengths": [32],
                        "sweep_output_lengths": [8], "sweep_fixed_input": 32, "sweep_fixed_output": 8},
        "cells": [{"model": "m", "variants": ["transformers-eager"]}],
    }
    import yaml

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return cfg


def test_measure_refuses_to_overwrite_the_pipelines_file(tmp_path):
    from llm_energy.pipeline.hardware import detect

    _config(tmp_path, tmp_path / "no-such-model")  # were the model loaded, the error would be another
    rel = f"results/measurements/{detect()}/m/transformers-eager/greedy.parquet"
    table = tmp_path / rel
    table.parent.mkdir(parents=True)
    pd.DataFrame({"start_time": ["2026-01-02T03:04:05+00:00", "2026-01-02T03:00:00+00:00"],
                  "energy_j": [1.0, 2.0]}).to_parquet(table, index=False)
    before, mtime = table.read_bytes(), table.stat().st_mtime_ns
    proc, took = _cli([], tmp_path)
    assert proc.returncode == 1 and took < 30
    assert proc.stderr.splitlines() == [f"error: {rel} exists (measured 2026-01-02T03:00:00+00:00); pass "
                                        "--overwrite to replace it, or --out elsewhere"], proc.stderr
    assert proc.stdout == ""
    assert table.read_bytes() == before and table.stat().st_mtime_ns == mtime
    assert not table.with_name("greedy.power.parquet").exists()
    # --overwrite goes past the refusal (here to the missing model, so the file stays as it was).
    proc, _ = _cli(["--overwrite"], tmp_path)
    assert proc.returncode == 1 and "exists" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "no-such-model" in proc.stderr, proc.stderr
    assert table.read_bytes() == before


def test_measure_refuses_an_unreadable_out_too(tmp_path):
    out = tmp_path / "mine.parquet"
    out.write_bytes(b"not parquet")
    proc, _ = _cli(["--out", str(out)], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: {out} exists (not readable as a measurement table); pass "
                                        "--overwrite to replace it, or --out elsewhere"]
    assert out.read_bytes() == b"not parquet"


def test_result_written_by_another_during_the_sweep_is_kept(tiny_model, tmp_path, monkeypatch):
    """The check before the load cannot see a file that appears while the cell is measured: then this
    measurement goes beside it, and one line says where."""
    from llm_energy.measurement import cell
    from llm_energy.pipeline import config as config_mod
    from llm_energy.pipeline.hardware import detect

    cfg = config_mod.validate(_config(tmp_path, tiny_model))
    out = tmp_path / "cell.parquet"
    theirs = pd.DataFrame({"start_time": ["2026-01-01T00:00:00+00:00"], "energy_j": [9.0]})

    def sweep_while_another_writes(job, points, labels=None, prompts=None, partial_out=None):
        theirs.to_parquet(out, index=False)
        return pd.DataFrame({"start_time": ["2026-01-02T03:04:05+00:00"], "energy_j": [1.0]}), pd.DataFrame()

    monkeypatch.setattr(cell, "run_job", sweep_while_another_writes)
    with pytest.raises(UserError) as err:
        cell.measure_cell(cfg, hardware=detect(), model="m", variant="transformers-eager", decoding="greedy",
                          out=out, overwrite=False)
    mine = tmp_path / "cell.measured-20260102T030405Z.parquet"
    assert str(err.value) == (f"{out} appeared while this cell was measured (measured 2026-01-01T00:00:00+00:00), "
                              f"so this measurement is in {mine} (and its .power.parquet); move them over {out} "
                              "to use them")
    assert pd.read_parquet(out).equals(theirs)
    assert pd.read_parquet(mine)["energy_j"].tolist() == [1.0]
    assert (tmp_path / "cell.measured-20260102T030405Z.power.parquet").exists()


# --- 4. The paper's status file names no absolute path -------------------------------------------------

def _paper_rule():
    spec = importlib.util.spec_from_file_location("paper_pdf_rule", REPO / "scripts/rules/paper_pdf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("latexmk", [True, False], ids=["latexmk", "no-latexmk"])
def test_paper_status_has_only_relative_paths(tmp_path, monkeypatch, latexmk):
    run = tmp_path / "run"
    (run / "paper" / "figures").mkdir(parents=True)
    (run / "paper" / "tables").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if latexmk:  # a stand-in that makes a PDF in its working folder
        fake = bin_dir / "latexmk"
        fake.write_text("#!/bin/sh\nprintf '%%PDF-1.4 fake\\n' > main.pdf\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(run)
    # As the rule gives it: main.tex by the repository's absolute path, the status relative to the run.
    sm = SimpleNamespace(input=SimpleNamespace(main=str(REPO / "paper/main.tex")),
                         output=SimpleNamespace(status="paper/main.pdf.txt"))
    _paper_rule().main(sm)
    status = (run / "paper/main.pdf.txt").read_text()
    assert not [w for w in status.split() if w.strip("`(").startswith("/")], status
    assert str(tmp_path) not in status and str(REPO) not in status and str(bin_dir) not in status
    if latexmk:
        assert status == f"paper/main.pdf built with latexmk ({len(b'%PDF-1.4 fake') + 1} bytes).\n"
        assert (run / "paper/main.pdf").read_bytes().startswith(b"%PDF")
        assert _mode(run / "paper/main.pdf") == 0o666 & ~io_mod.current_umask()
        assert [p.name for p in (run / "paper").iterdir() if p.name.startswith(".")] == []
    else:
        assert status.startswith("paper/main.pdf not built: latexmk not found; install")
