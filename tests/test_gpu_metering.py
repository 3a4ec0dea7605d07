"""GPU measurements that hold up, against the fake NVML (tests/fake_nvml.py) on simulated multi-GPU nodes.

A cell meters exactly its own GPUs and narrows the engine to them; the counter's update period is
detected; instantaneous and averaged power are kept apart; ML.ENERGY-style gates mark bad windows;
temperature, clocks and power limit are recorded at both edges; an optional cool-down runs before
repeats; a GPU that disappears mid-cell stops it with one line and keeps the rows measured so far.
"""

import json
import logging
import sys
import time

import pandas as pd
import pytest
from fake_nvml import FakeDevice, FakeNvml

from llm_energy import UserError
from llm_energy.measurement.backends.base import Backend, BatchResult
from llm_energy.measurement.loop import run_cell
from llm_energy.measurement.meters import DeviceLost, NvmlMeter, counter_period_s, make_meter
from llm_energy.measurement.partial import partial_path
from llm_energy.measurement.protocol import Point, Protocol
from llm_energy.measurement.validation import GATE_DEFAULTS, check_measurements, gate_options


def _node(n=4, **kw):
    """A simulated node of ``n`` GPUs drawing 100, 200, 300, ... W (so a sum tells which were metered)."""
    return FakeNvml([FakeDevice(f"GPU-{i}", 100.0 * (i + 1), **kw) for i in range(n)])


@pytest.fixture
def node(monkeypatch, tmp_path):
    """Install a fake node as the ``pynvml`` module; returns a function that builds and installs one."""

    def install(nvml: FakeNvml) -> FakeNvml:
        module = type(sys)("pynvml")
        for name in dir(nvml):
            if not name.startswith("_"):
                setattr(module, name, getattr(nvml, name))
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return nvml

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(tmp_path / "locks"))
    return install


class GpuBackend(Backend):
    """Sleeps 2 ms per generated token; remembers what CUDA_VISIBLE_DEVICES said when it loaded.

    ``on_run(k, prompts)`` is called before the k-th batch (1-based) runs.
    """

    def __init__(self, variant="transformers-eager", on_run=None):
        super().__init__("fake", variant=variant)
        self.on_run = on_run
        self.runs = 0
        self.visible_at_load = "unset"

    def load(self):
        import os

        self.visible_at_load = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")

    def run(self, prompts, output_len):
        self.runs += 1
        if self.on_run:
            self.on_run(self.runs, prompts)
        time.sleep(0.002 * output_len)
        return BatchResult([output_len] * len(prompts))

    def run_padded(self, prompts, output_len):
        return self.run(prompts, output_len)

    def describe(self):
        return {"framework": "fake"}


def _protocol(**kw):
    base = dict(meter="nvml", warmup_batches=0, repeats=2, idle_s=0.05, min_window_s=0.05, power_sample_interval_s=0.01,
                pause_s=0, examples_per_point=0, examples_per_point_large_batch=0)
    return Protocol.of(**{**base, **kw})


# 1. Exactly the cell's devices -------------------------------------------------------------------

def test_a_tp1_cell_on_a_4_gpu_node_meters_one_gpu_and_narrows_the_engine_to_it(node, caplog):
    node(_node(4))
    backend = GpuBackend()
    with caplog.at_level(logging.INFO, logger="llm_energy"):
        df, _ = run_cell(backend, [Point(8, 8, 2)], _protocol())
    assert backend.visible_at_load == "GPU-0"  # set before the engine loaded
    import os

    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # and given back at the end of the cell
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if "visible GPUs" in r.getMessage())) == 1
    assert any("uses 1 of the 4 visible GPUs" in r.getMessage() for r in caplog.records)
    assert set(df["n_gpus"]) == {1} and set(df["gpu_uuids"]) == {"GPU-0"} and set(df["n_visible_gpus"]) == {4}
    # 100 W, not the node's 1,000 W.
    assert (df["avg_power_w"]).between(90, 110).all()
    per_gpu = df["gpu_energy_j"].map(json.loads)
    assert per_gpu.map(len).eq(1).all()
    assert [p[0] for p in per_gpu] == pytest.approx(df["energy_j"].tolist(), rel=1e-4)


def test_a_tp2_cell_meters_the_first_two_visible_gpus_by_cuda_visible_devices(node, monkeypatch):
    node(_node(4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-3,0")  # index and UUID; CUDA's order, not NVML's
    backend = GpuBackend("vllm-eager-tp2")
    # The two counters are read one after the other, a few ms apart on a loaded host (the fake ones
    # grow with wall time): a 0.5 s window keeps that skew well inside the 5 % asserted below.
    df, _ = run_cell(backend, [Point(8, 8, 2)], _protocol(min_window_s=0.5))
    assert backend.visible_at_load == "GPU-2,GPU-3"
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,GPU-3,0"  # restored
    assert set(df["gpu_uuids"]) == {"GPU-2,GPU-3"} and set(df["n_gpus"]) == {2}
    assert df["avg_power_w"].between(300 + 400 - 20, 700 + 20).all()
    per_gpu = pd.DataFrame(df["gpu_energy_j"].map(json.loads).tolist())
    assert (per_gpu[1] / per_gpu[0]).tolist() == pytest.approx([400 / 300] * len(df), rel=0.05)
    assert per_gpu.sum(axis=1).tolist() == pytest.approx(df["energy_j"].tolist(), rel=1e-4)


def test_a_cell_on_exactly_its_gpus_is_not_narrowed(node, caplog):
    node(_node(2))
    backend = GpuBackend("vllm-eager-tp2")
    with caplog.at_level(logging.INFO, logger="llm_energy"):
        run_cell(backend, [Point(8, 2, 1)], _protocol(repeats=1))
    assert backend.visible_at_load == "unset"
    assert not any("visible GPUs" in r.getMessage() for r in caplog.records)


def test_too_few_gpus_for_the_cell_stop_it_even_with_meter_auto(node):
    node(_node(2))
    with pytest.raises(UserError, match=r"runs on 4 GPU\(s\) and 2 are visible"):
        make_meter("auto", n_gpus=4)
    assert make_meter("auto", n_gpus=2).source == "nvml"


class FakeServer(GpuBackend):
    """A GpuBackend that also answers the rate sweep's streamed requests (2 ms per token)."""

    def timed_request(self, prompt, output_len, timeout_s):
        chunks = []
        for _ in range(output_len):
            time.sleep(0.002)
            chunks.append((time.perf_counter(), 1))
        return {"chunks": chunks, "tokens": output_len}


def _job_config(tmp_path, model_dir, variant):
    """A config, a grid measurement and a trace profile for a replay or rate-sweep job of ``variant``."""
    from llm_energy.pipeline import config as config_mod

    cfg = config_mod.validate({
        "models": {"m": {"source": "local", "path": str(model_dir)}},
        "workloads": {"w": {"file": "w.csv", "input_column": "i", "output_column": "o"}},
        "bins": {"input": [16, 32], "output": [4, 8]},
        "measurement": {"batch_size": 2, "sweep_batch_sizes": [1, 2], "sweep_input_lengths": [16],
                        "sweep_output_lengths": [4], "sweep_fixed_input": 16, "sweep_fixed_output": 4,
                        "idle_s": 0.05, "min_window_s": 0.05, "nvml_counter_probe_s": 0.1},
        "replay": {"workloads": ["w"], "n_requests": 4, "control_points": 0},
        "online": {"trace": "w", "rates": [200]},
        "cells": [{"model": "m", "variants": [variant]}]})
    grid = tmp_path / "grid.parquet"
    pd.DataFrame({"input_len": [16], "output_len": [4], "batch_size": [2], "role": ["grid"], "status": ["ok"],
                  "energy_j": [1.0]}).to_parquet(grid, index=False)
    profile = tmp_path / "w.parquet"
    pd.DataFrame({"input_tokens": [8, 12, 16, 20, 30],
                  "output_tokens": [3, 4, 5, 6, 8]}).to_parquet(profile, index=False)
    return cfg, grid, profile


@pytest.mark.parametrize("variant, watts", [("vllm-eager", 100.0), ("vllm-eager-tp2", 100.0 + 200.0)])
def test_a_replay_on_a_4_gpu_node_meters_exactly_its_cells_gpus(node, tiny_model, tmp_path, monkeypatch, variant,
                                                                 watts):
    from llm_energy.estimates.replay import replay_cell
    from llm_energy.measurement import cell as cell_mod
    from llm_energy.pipeline.hardware import detect

    node(_node(4))
    cfg, grid, profile = _job_config(tmp_path, tiny_model, variant)
    built = []
    monkeypatch.setattr(cell_mod, "cell_backend", lambda *a, **kw: built.append(GpuBackend(variant)) or built[-1])
    df = replay_cell(cfg, hardware=detect(), model="m", variant=variant, decoding="greedy", model_dir=tiny_model,
                     profiles={"w": profile}, measurements=grid)
    # The node draws 100 + 200 + 300 + 400 W: the replay's power says which GPUs it metered.
    assert (df["replay_energy_j"] / df["replay_duration_s"]).tolist() == pytest.approx([watts] * len(df), rel=0.1)
    assert built[0].visible_at_load == ("GPU-0" if watts == 100.0 else "GPU-0,GPU-1")


def test_a_single_gpu_rate_sweep_on_a_4_gpu_node_meters_one_gpu(node, tiny_model, tmp_path, monkeypatch):
    from llm_energy.measurement import cell as cell_mod
    from llm_energy.online.sweep import serve_cell
    from llm_energy.pipeline.hardware import detect

    node(_node(4))
    cfg, grid, profile = _job_config(tmp_path, tiny_model, "vllm-online")
    server = FakeServer("vllm-online")
    closed = []
    server.close = lambda: closed.append(True)
    monkeypatch.setattr(cell_mod, "cell_backend", lambda *a, **kw: server)
    rows = serve_cell(cfg, hardware=detect(), model="m", variant="vllm-online", decoding="greedy",
                      model_dir=tiny_model, profile=profile)
    assert (rows["energy_j"] / rows["window_s"]).tolist() == pytest.approx([100.0] * len(rows), rel=0.15)
    assert server.visible_at_load == "GPU-0" and closed == [True]


def test_a_job_closes_its_backend_and_releases_its_gpus_when_the_gpu_is_lost(node, tiny_model, tmp_path,
                                                                             monkeypatch):
    """A replay (no partial rows to keep) stops with the lost GPU's one line, its server closed, its
    locks free for the next job."""
    from llm_energy.estimates.replay import replay_cell
    from llm_energy.measurement import cell as cell_mod
    from llm_energy.measurement.job import MeteredJob
    from llm_energy.pipeline.hardware import detect

    nvml = node(_node(2))
    cfg, grid, profile = _job_config(tmp_path, tiny_model, "vllm-eager")

    def crash(k, prompts):
        nvml.lose("GPU-0")
        raise RuntimeError("CUDA error: unspecified launch failure")

    backend = GpuBackend("vllm-eager", on_run=crash)
    closed = []
    backend.close = lambda: closed.append(True)
    monkeypatch.setattr(cell_mod, "cell_backend", lambda *a, **kw: backend)
    with pytest.raises(DeviceLost, match=r"^GPU 0 .* stopped answering NVML.*GPU is lost") as err:
        replay_cell(cfg, hardware=detect(), model="m", variant="vllm-eager", decoding="greedy", model_dir=tiny_model,
                    profiles={"w": profile}, measurements=grid)
    assert "\n" not in str(err.value) and closed == [True]
    node(_node(2))  # the GPU is back: the next job on it takes its lock at once
    with MeteredJob(GpuBackend(), _protocol()) as job:
        assert job.meter.device_keys()


def test_lock_is_taken_on_the_cells_gpus_only(node):
    nvml = node(_node(4))
    meter = NvmlMeter(nvml, n_gpus=2)
    try:
        assert meter.device_keys() == ["GPU-0", "GPU-1"]
    finally:
        meter.close()


# 2. NVML pitfalls ----------------------------------------------------------------------------------

def test_the_counters_update_period_is_detected_and_recorded(node):
    nvml = node(_node(2, counter_period_s=0.05))
    meter = NvmlMeter(nvml, n_gpus=1)
    meter.close()
    assert meter.counter_period_s == pytest.approx(0.05, rel=0.2)
    assert meter.describe()["nvml_counter_period_s"] == meter.counter_period_s
    # A counter that never moves within the probe has no period to report.
    assert counter_period_s(lambda: 1.0, 0.05) != counter_period_s(lambda: 1.0, 0.05)  # NaN


def test_a_window_too_short_for_the_counter_is_flagged(node):
    node(_node(1, counter_period_s=0.05))
    df, _ = run_cell(GpuBackend(), [Point(8, 1, 1)], _protocol(repeats=1, min_window_s=0.0))
    checked = check_measurements(df, min_window_s=0.0, max_cv=1.0)
    assert "window shorter than 10 updates of the energy counter" in checked["invalid_reason"].iloc[0]
    df, _ = run_cell(GpuBackend(), [Point(8, 1, 1)], _protocol(repeats=1, min_window_s=0.6))
    checked = check_measurements(df, min_window_s=0.0, max_cv=1.0, min_power_fraction_of_idle=0.0)
    assert "counter" not in checked["invalid_reason"].iloc[0]


def test_instant_and_averaged_power_are_kept_apart(node):
    node(FakeNvml([FakeDevice("GPU-0", 400.0, average_power_w=500.0)]))
    df, power = run_cell(GpuBackend(), [Point(8, 8, 1)], _protocol(repeats=1, min_window_s=0.3))
    assert set(df["power_reading"]) == {"instant"}
    assert set(power["power_w"]) == {400.0} and set(power["power_avg_w"]) == {500.0}
    # The timeline integrates the same (instantaneous) power the counter accumulates.
    assert df["timeline_energy_j"].iloc[0] == pytest.approx(df["energy_j"].iloc[0], rel=0.05)


@pytest.mark.parametrize("fields, reading", [(("average",), "average"), ((), "usage")])
def test_power_reading_falls_back_to_the_average_then_to_power_usage(node, fields, reading):
    nvml = node(FakeNvml([FakeDevice("GPU-0", 400.0, average_power_w=500.0, power_fields=fields)]))
    meter = NvmlMeter(nvml, sample_interval_s=0.01)
    with meter.window() as w:
        time.sleep(0.05)
    meter.close()
    assert meter.power_reading == reading and w.power_avg_samples == []
    assert {p for _, p in w.power_samples} == {500.0}


def test_a_driver_without_field_values_uses_power_usage(node):
    from fake_nvml import NVMLError

    def missing(h, fields):  # pynvml on a driver older than the function: NVMLError_FunctionNotFound
        raise NVMLError(13)

    nvml = FakeNvml([FakeDevice("GPU-0", 300.0)])
    nvml.nvmlDeviceGetFieldValues = missing
    meter = NvmlMeter(nvml)
    meter.close()
    assert meter.power_reading == "usage"


def test_temperature_sm_clock_and_power_limit_at_both_edges_and_a_limit_change_is_flagged(node):
    nvml = node(_node(2))
    temps = iter(range(50, 1000))
    nvml.devices[0].temperature_c = lambda: next(temps)

    def change_limit(k, prompts):
        if k == 3:  # inside the second repeat's full window
            nvml.devices[0].power_limit_w = 500.0

    df, _ = run_cell(GpuBackend(on_run=change_limit), [Point(8, 8, 1)], _protocol(min_window_s=0.0))
    assert (df["temperature_c_end"] > df["temperature_c_start"]).all()
    assert set(df["sm_clock_mhz_start"]) == {1980} and set(df["sm_clock_mhz_end"]) == {1980}
    assert df["power_limit_total_w_start"].tolist() == [700.0, 700.0]
    assert df["power_limit_total_w_end"].tolist() == [700.0, 500.0]
    checked = check_measurements(df, min_window_s=0.0, max_cv=1.0, min_power_fraction_of_idle=0.0,
                                 min_counter_periods=0)
    assert checked["valid"].tolist() == [True, False]
    assert "power limit changed during the window" in checked["invalid_reason"].iloc[1]


def _gate_rows():
    base = {"input_len": 64, "output_len": 8, "batch_size": 1, "repeat": 0, "status": "ok", "hardware": "h100",
            "model": "m", "variant": "vllm-eager", "decoding": "greedy", "energy_source": "nvml",
            "duration_s": 5.0, "n_batches_in_window": 1, "prefill_duration_s": 5.0, "n_prefill_batches_in_window": 1,
            "energy_j": 2000.0, "prefill_energy_j": 1000.0, "output_tokens": 8, "avg_power_w": 400.0,
            "timeline_energy_j": 2000.0, "idle_power_w": 100.0, "nvml_counter_period_s": 0.1, "n_gpus": 1,
            "power_limit_w": 700.0, "power_limit_total_w_start": 700.0, "power_limit_total_w_end": 700.0,
            "app_sm_clock_mhz_start": 1755, "app_sm_clock_mhz_end": 1755, "temperature_c_end": 60,
            "temp_slowdown_c": 87.0}
    cases = {
        "clean": {},
        "short": {"duration_s": 0.5, "energy_j": 200.0, "prefill_energy_j": 100.0},
        "floor": {"avg_power_w": 40.0, "energy_j": 200.0, "prefill_energy_j": 100.0},
        "limit": {"avg_power_w": 800.0, "energy_j": 4000.0},
        "hot": {"temperature_c_end": 88},
        "clock": {"app_sm_clock_mhz_start": 1410, "app_sm_clock_mhz_end": 1410},
        "gap": {},
    }
    rows = pd.DataFrame([{**base, **change, "input_len": 16 * 2 ** i} for i, change in enumerate(cases.values())],
                        index=list(cases))
    rows["timeline_energy_j"] = rows["energy_j"].where(rows.index != "gap", 1000.0)
    return rows


def test_ml_energy_style_gates_mark_their_rows():
    checked = check_measurements(_gate_rows(), min_window_s=0.0, max_cv=1.0, max_timeline_gap=0.2)
    reasons = checked["invalid_reason"]
    assert reasons["clean"] == ""
    assert reasons["short"] == "window shorter than 10 updates of the energy counter"
    assert reasons["floor"] == "average power below the floor (idle power share or min_avg_power_w)"
    assert reasons["limit"] == "average power above 1.1 x the power limit"
    assert reasons["hot"] == "GPU at its slowdown temperature (clocks throttled)"
    assert reasons["clock"] == "application SM clock differs from the cell's first window"
    assert reasons["gap"] == "power timeline and energy counter differ by more than 0.2"
    # Config overrides: a fixed power floor, a temperature limit of one's own; and the defaults.
    strict = check_measurements(_gate_rows(), min_window_s=0.0, max_cv=1.0, min_avg_power_w=450.0,
                                max_temperature_c=50.0)
    assert "average power below the floor" in strict.loc["clean", "invalid_reason"]
    assert "slowdown temperature" in strict.loc["clean", "invalid_reason"]
    assert check_measurements(_gate_rows(), min_window_s=0.0, max_cv=1.0).loc["gap", "valid"]  # off by default
    with pytest.raises(TypeError, match="max_temp"):
        check_measurements(_gate_rows(), min_window_s=0.0, max_cv=1.0, max_temp=1)


def test_gates_leave_cpu_rows_and_older_tables_alone():
    rows = _gate_rows().assign(energy_source="cpu-estimate", avg_power_w=1.0)
    assert check_measurements(rows, min_window_s=0.0, max_cv=1.0, max_timeline_gap=0.2)["valid"].all()
    old = _gate_rows().drop(columns=["nvml_counter_period_s", "power_limit_total_w_start", "temp_slowdown_c",
                                     "app_sm_clock_mhz_start", "app_sm_clock_mhz_end"])
    reasons = check_measurements(old, min_window_s=0.0, max_cv=1.0)["invalid_reason"]
    assert reasons["limit"] == "average power above 1.1 x the power limit"  # power_limit_w x n_gpus
    assert reasons["short"] == reasons["hot"] == reasons["clock"] == ""


def test_the_configs_validation_keys_are_the_gates_options():
    from llm_energy.pipeline import config as config_mod

    cfg = config_mod.load("config.yaml")
    assert gate_options(cfg["validation"]) == GATE_DEFAULTS
    m = cfg["measurement"]
    assert (m["nvml_counter_probe_s"], m["cooldown_temp_c"], m["cooldown_max_s"]) == (1.0, None, 60)
    assert Protocol.from_config(m).cooldown_temp_c is None


def test_cool_down_waits_for_the_target_or_the_time_limit(node, caplog):
    nvml = node(_node(2))
    t0 = time.perf_counter()
    nvml.devices[1].temperature_c = lambda: 80 - 100 * (time.perf_counter() - t0)  # 60 C after 0.2 s
    meter = NvmlMeter(nvml)
    try:
        waited = meter.cool_down(60, max_s=5, poll_s=0.01)
        assert 0.1 < waited < 1.0 and meter.temperature_c() < 60
        nvml.devices[1].temperature_c = 90
        with caplog.at_level(logging.WARNING, logger="llm_energy"):
            assert 0.1 <= meter.cool_down(60, max_s=0.1, poll_s=0.02) < 0.5
        assert any("still 90 C" in r.getMessage() for r in caplog.records)
    finally:
        meter.close()


def test_cool_down_runs_before_every_repeat_and_is_recorded(node):
    nvml = node(_node(1))
    hot_until = [0.0]

    def heat(k, prompts):  # every batch heats the GPU for 0.1 s
        hot_until[0] = time.perf_counter() + 0.1

    nvml.devices[0].temperature_c = lambda: 85 if time.perf_counter() < hot_until[0] else 45
    df, _ = run_cell(GpuBackend(on_run=heat), [Point(8, 2, 1)],
                     _protocol(cooldown_temp_c=50, cooldown_max_s=2, repeats=2, warmup_batches=1))
    assert df["cooldown_s"].between(0.02, 1.0).all()
    assert df["cell_protocol_s"].iloc[0] >= df["cooldown_s"].sum()


# A GPU that disappears -----------------------------------------------------------------------------

def test_a_gpu_lost_mid_cell_stops_with_one_line_and_keeps_the_rows_measured(node, tmp_path):
    nvml = node(_node(2))
    out = tmp_path / "greedy.parquet"
    points = [Point(8, 2, 1, "sweep"), Point(16, 2, 1, "sweep"), Point(32, 2, 1, "sweep")]

    def lose(k, prompts):  # lost while the second point is measured
        if len(prompts[0]) == 16:
            nvml.lose("GPU-0")

    with pytest.raises(DeviceLost) as err:
        run_cell(GpuBackend(on_run=lose), points, _protocol(), partial_out=partial_path(out))
    message = str(err.value)
    assert "\n" not in message
    assert "GPU 0 (NVIDIA H100 80GB HBM3, GPU-0) stopped answering NVML" in message and "GPU is lost" in message
    assert f"2 rows measured before are kept in {tmp_path / 'greedy.partial.parquet'}" in message
    kept = pd.read_parquet(tmp_path / "greedy.partial.parquet")
    assert kept["input_len"].tolist() == [8, 8] and (kept["energy_j"] > 0).all()
    assert kept["partial_reason"].str.contains("GPU is lost").all() and set(kept["gpu_uuids"]) == {"GPU-0"}
    assert not out.exists()


def test_an_engine_error_from_a_lost_gpu_is_reported_as_the_lost_gpu(node, tmp_path):
    nvml = node(_node(1))

    def crash(k, prompts):
        if k == 3:
            nvml.lose("GPU-0")
            raise RuntimeError("CUDA error: unspecified launch failure")

    with pytest.raises(DeviceLost, match=r"GPU 0 .* stopped answering NVML.*no point had been measured"):
        run_cell(GpuBackend(on_run=crash), [Point(8, 2, 1)], _protocol(), partial_out=tmp_path / "x.partial.parquet")
    assert not (tmp_path / "x.partial.parquet").exists()

    def bug(k, prompts):  # an engine error on a healthy GPU is not a lost device
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    node(_node(1))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_cell(GpuBackend(on_run=bug), [Point(8, 2, 1)], _protocol())


def test_losing_the_gpu_while_the_timeline_samples_it(node):
    nvml = node(_node(1))
    meter = NvmlMeter(nvml, sample_interval_s=0.005)
    try:
        with pytest.raises(DeviceLost, match="GPU is lost"):
            with meter.window():
                time.sleep(0.03)
                nvml.lose("GPU-0")
                time.sleep(0.03)
    finally:
        meter.close()


def test_the_partial_file_is_not_a_measurement_path():
    from pathlib import Path

    out = Path("results/measurements/h100-80gb-hbm3/m/vllm-eager/greedy.parquet")
    assert partial_path(out) == out.with_name("greedy.partial.parquet")


def test_a_gpu_already_lost_at_the_start_is_one_line(node):
    nvml = node(_node(2))
    nvml.lose("GPU-1")
    with pytest.raises(UserError, match=r"^meter 'nvml' is not available: GPU 1 does not answer NVML \(GPU is lost\)"):
        make_meter("auto")
