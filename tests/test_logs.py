"""A cell's log file holds its whole run (vLLM resets logging when its engine starts), and the ETA a
cell prints is the right order of magnitude from its first point on."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from llm_energy.measurement.eta import estimate_remaining_s, fit_remaining_s, point_cost
from llm_energy.measurement.protocol import Point, Protocol
from llm_energy.pipeline import config as config_mod
from llm_energy.pipeline.rulekit import run_rule, setup_logging


@pytest.fixture
def restore_logging():
    """setup_logging replaces the root logger's handlers (pytest's among them): put them back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging.captureWarnings(False)  # an earlier test's setup_logging may have left it on, with pytest's hook gone
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)


# --- the ETA (pure function) ------------------------------------------------------------------------

def _default_points():
    cfg = config_mod.validate({"models": {"m": {"source": "local", "path": "."}},
                               "workloads": {"w": {"file": "w.csv", "input_column": "i", "output_column": "o"}},
                               "cells": [{"model": "m", "variants": ["vllm-eager"]}],
                               "bins": {"input": [64, 256, 1024, 4096], "output": [8, 32, 128, 512]},
                               "measurement": {"batch_size": 8, "sweep_batch_sizes": [1, 8], "repeats": 2,
                                               "min_window_s": 0.5, "sweep_input_lengths": [64, 256, 1024],
                                               "sweep_output_lengths": [8, 32, 128], "sweep_fixed_input": 64,
                                               "sweep_fixed_output": 8, "examples_per_point": 0,
                                               "examples_per_point_large_batch": 0}})
    return [Point(*p) for p in config_mod.cell_points(cfg)], Protocol.from_config(cfg["measurement"])


def test_eta_unknown_before_a_point_and_zero_after_the_last():
    assert estimate_remaining_s([], [], [(8.0, 100.0)]) is None
    assert estimate_remaining_s([(8.0, 100.0)], [2.0], []) == 0.0


def test_eta_after_one_point_counts_its_time_as_fixed():
    """One point cannot separate fixed from growing cost: every remaining point takes as long."""
    assert estimate_remaining_s([(8.0, 100.0)], [2.0], [(512.0, 1e5)] * 5) == pytest.approx(10.0)


def test_eta_recovers_fixed_per_step_and_per_token_parts():
    points, protocol = _default_points()
    cost = [point_cost(p, protocol) for p in points]
    times = [1.5 + 0.01 * steps + 2e-5 * tokens for steps, tokens in cost]
    left = fit_remaining_s(cost[:6], times[:6], cost[6:])  # the fit itself, before steadying
    assert left == pytest.approx(sum(times[6:]), rel=1e-6)


@pytest.mark.parametrize("per_step_s, per_token_s", [(0.012, 2e-5), (0.02, 1e-6), (0.002, 1e-4)])
def test_eta_is_sane_from_the_first_point_on(per_step_s, per_token_s):
    """The default config's sweep under a cost model with windows of at least 0.5 s and a one-time
    first-call overhead: every estimate is within 4x of the truth. (Scaling the elapsed time by the
    work ratio, as before, gave 20-40x at the first point.)"""
    points, protocol = _default_points()

    def batch_s(p, out):
        return 0.01 + per_step_s * out + per_token_s * p.batch_size * (p.input_len + out)

    times = [batch_s(p, p.output_len) + batch_s(p, 1)
             + protocol.repeats * (max(0.5, batch_s(p, p.output_len)) + max(0.5, batch_s(p, 1))) for p in points]
    times[0] += 3.0
    cost = [point_cost(p, protocol) for p in points]
    for k in range(1, len(points)):
        ratio = estimate_remaining_s(cost[:k], times[:k], cost[k:]) / sum(times[k:])
        assert 0.25 < ratio < 4, (k, ratio)


# --- logging that survives a reconfiguration, and the server's output --------------------------------

def test_log_file_is_fresh_and_survives_a_dictconfig(tmp_path, restore_logging):
    """What vLLM does at engine start (a dictConfig, which closes every handler) no longer ends the
    log: the file handler appends, so it reopens."""
    import logging.config

    path = tmp_path / "logs" / "cell.log"
    path.parent.mkdir()
    path.write_text("a line of an earlier run\n")
    setup_logging(path)
    logging.getLogger("llm_energy.test").info("before the engine")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                               "handlers": {"vllm": {"class": "logging.StreamHandler",
                                                     "stream": "ext://sys.stdout"}},
                               "loggers": {"vllm": {"handlers": ["vllm"], "propagate": False}}})
    logging.getLogger("llm_energy.test").info("after the engine")
    import warnings

    warnings.warn("a warning of the run", stacklevel=1)
    text = path.read_text()
    assert "earlier run" not in text
    assert "before the engine" in text and "after the engine" in text and "a warning of the run" in text


def test_server_output_goes_to_the_log_with_its_levels(caplog):
    from llm_energy.measurement.backends.vllm_online import OutputPump

    script = ("import sys\n"
              "print('(APIServer pid=1) INFO 11-26 12:00:00 [api.py:1] Starting vLLM API server')\n"
              "print('(EngineCore pid=2) ERROR 11-26 12:00:01 [core.py:9] EngineCore failed to start.')\n"
              "print('Traceback (most recent call last):', file=sys.stderr)\n"
              "print('OSError: no such model', file=sys.stderr)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with caplog.at_level(logging.INFO, logger="llm_energy.measurement.backends.vllm_online.server"):
        pump = OutputPump(proc.stdout, logging.getLogger("llm_energy.measurement.backends.vllm_online.server"))
        proc.wait(timeout=30)
        pump.join(timeout=10)
    levels = {r.getMessage().split(" ")[0]: r.levelno for r in caplog.records}
    assert levels == {"(APIServer": logging.INFO, "(EngineCore": logging.ERROR, "Traceback": logging.ERROR,
                      "OSError:": logging.ERROR}
    assert pump.tail(2).splitlines() == ["Traceback (most recent call last):", "OSError: no such model"]


def test_server_errors_after_the_shutdown_we_asked_for_go_to_the_log_at_info_and_are_counted(caplog):
    from llm_energy.measurement.backends.vllm_online import OutputPump

    script = ("import sys, time\n"
              "print('(APIServer pid=1) ERROR 11-26 12:00:00 [core.py:1] a real error while serving', flush=True)\n"
              "time.sleep(0.5)\n"
              "print('(APIServer pid=1) ERROR 12-06 13:50:23 [async_llm.py:906] AsyncLLM output_handler failed.')\n"
              "print('(APIServer pid=1) WARNING 12-06 13:50:23 [x.py:1] teardown warning')\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    logger = logging.getLogger("llm_energy.measurement.backends.vllm_online.server")
    with caplog.at_level(logging.INFO, logger=logger.name):
        pump = OutputPump(proc.stdout, logger)
        deadline = time.monotonic() + 20
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
        pump.stopping.set()  # what VllmOnlineBackend.close() does before it stops the server
        proc.wait(timeout=30)
        pump.join(timeout=10)
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.ERROR, logging.INFO, logging.INFO]  # the error while serving stays an error
    assert "output_handler failed" in caplog.records[1].getMessage()  # kept in the log, not dropped
    assert pump.errors_while_stopping == 1


# --- a real vLLM cell through the rule's code path ----------------------------------------------------

@pytest.mark.slow
def test_vllm_cell_log_holds_engine_start_progress_and_summary(tiny_model, tmp_path, capsys, restore_logging):
    """run_rule (as Snakemake runs measure_cell) with a tiny vLLM cell of two points: its log file has
    vLLM's lines from the engine process, every point's progress, and the cell's summary; stderr
    still shows the progress. This starts an engine of its own: the engine start is what is tested."""
    pytest.importorskip("vllm")
    from llm_energy.measurement.cell import measure_cell
    from llm_energy.pipeline.hardware import detect

    cfg = config_mod.validate({
        "models": {"m": {"source": "local", "path": str(tiny_model), "dtype": "bfloat16"}},
        "workloads": {"w": {"file": "w.csv", "input_column": "i", "output_column": "o"}},
        "bins": {"input": [16, 32], "output": [4]},
        "measurement": {"warmup_batches": 1, "repeats": 1, "min_window_s": 0.0, "idle_s": 0.1, "pause_s": 0,
                        "batch_size": 2, "examples_per_point": 0, "examples_per_point_large_batch": 0,
                        "vllm_kv_cache_gib": 1, "prompts": "random"},
        "cells": [{"model": "m", "variants": ["vllm-eager"], "points": ["grid"]}],
    })
    log_path = tmp_path / "logs" / "measure.log"
    out = tmp_path / "cell.parquet"

    def body(sm):
        measure_cell(cfg, hardware=detect(), model="m", variant="vllm-eager", decoding="greedy",
                     out=out)
        logging.getLogger("llm_energy").info("after the cell")

    run_rule(SimpleNamespace(log=[str(log_path)], rule="measure_cell"), body)
    text = log_path.read_text()
    lines = text.splitlines()
    # vLLM's own lines, from the engine-core process that vLLM spawns (its logging reset is what hid them)
    assert any(re.search(r" vllm\.\S+ \[(?!MainProcess)[^\]]*pid=\d+\]: ", line) for line in lines), text[-3000:]
    assert "Initializing a V1 LLM engine" in text or "init engine" in text, text[-3000:]
    assert "ETA unknown" in text
    assert re.search(r"point 1/2 \(in=16 out=4 batch=2\) ok in [\d.]+ s; [\d.]+ s elapsed, about \d+ s left", text)
    assert re.search(r"point 2/2 \(in=32 out=4 batch=2\) ok in [\d.]+ s; [\d.]+ s elapsed, about 0 s left", text)
    assert re.search(r"cell \S+/m/vllm-eager/greedy done: 2 points \(2 rows ok\)", text), text[-3000:]
    assert "after the cell" in text  # after the engine shut down too
    assert out.exists()
    assert "point 2/2" in capsys.readouterr().err  # the terminal keeps its copy
    assert not any(isinstance(h, logging.FileHandler) for h in logging.getLogger("vllm").handlers)
