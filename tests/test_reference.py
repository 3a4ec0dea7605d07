"""The reference kernel: a fixed piece of work metered through the grid job and the replay job, the
meter's level in each; read beside (never instead of) the raw energies."""

import contextlib
import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_protocol import FakeBackend, _protocol

from llm_energy.estimates.drift import reference_corrected, reference_level
from llm_energy.estimates.replay import replay
from llm_energy.measurement.loop import run_cell
from llm_energy.measurement.meters.base import Window
from llm_energy.measurement.meters.cpu_estimate import CpuEstimateMeter
from llm_energy.measurement.protocol import Point
from llm_energy.measurement.reference import ReferenceKernel, reference_for

REPO = Path(__file__).resolve().parents[1]


class ScaledMeter:
    """A window whose energy is a fixed ``joules`` per window: the level a job's meter is at."""

    source = "cpu-estimate"

    def __init__(self, joules: float):
        self.joules, self.windows = joules, 0

    @contextlib.contextmanager
    def window(self):
        w = Window(energy_source=self.source)
        yield w
        self.windows += 1
        w.energy_j, w.duration_s = self.joules, 1.0


def test_the_reference_kernel_reads_the_cpu_meter_on_one_thread_and_restores_the_threads():
    threads = torch.get_num_threads()
    energy = ReferenceKernel(CpuEstimateMeter(4.0), iterations=50).measure()
    assert energy > 0  # CPU seconds x 4 W: the kernel's work shows on the real meter
    assert torch.get_num_threads() == threads


def test_only_a_cpu_meter_gets_a_reference():
    assert isinstance(reference_for(CpuEstimateMeter(4.0)), ReferenceKernel)
    gpu = ScaledMeter(1.0)
    gpu.source = "nvml"
    assert reference_for(gpu) is None  # a GPU's counter does not see CPU work


def test_a_grid_cell_reads_the_reference_once_per_point_and_a_sweep_only_cell_never():
    df, _ = run_cell(FakeBackend(), [Point(8, 2, 1, "grid"), Point(8, 4, 1, "sweep")], _protocol(warmup_batches=0))
    ref = df.groupby(["output_len"])["reference_energy_j"]
    assert (df["reference_energy_j"] > 0).all()
    assert (ref.nunique() == 1).all()  # one reading per point, carried by each of its repeats
    assert df["cell_protocol_s"].iloc[0] > 0  # its seconds count as protocol time, not measurement
    sweeps, _ = run_cell(FakeBackend(), [Point(8, 2, 1, "sweep")], _protocol(warmup_batches=0))
    assert sweeps["reference_energy_j"].isna().all()  # no replay compares with it: not paid


class Served:
    def serve(self, prompts, outs, batch_size):
        return list(outs)


def test_a_replay_run_carries_the_mean_of_the_readings_just_before_and_after_it():
    readings = iter([10.0, 14.0, 12.0])

    class Stub:
        def measure(self):
            return next(readings)

    sample = pd.DataFrame({"input_tokens": [4, 6], "output_tokens": [2, 3]})
    rows = replay(Served(), ScaledMeter(5.0), sample, 2, seed=0, runs=2, warmup=False, reference=Stub())
    assert [r["reference_energy_j"] for r in rows] == [12.0, 13.0]  # (10 + 14) / 2, (14 + 12) / 2
    plain = replay(Served(), ScaledMeter(5.0), sample, 2, seed=0, runs=2, warmup=False)
    assert all(math.isnan(r["reference_energy_j"]) for r in plain)


def _grid(reference: float | None) -> pd.DataFrame:
    rows = [{"input_len": i, "output_len": 8, "batch_size": 4, "role": "grid", "repeat": r, "energy_j": 1.0}
            for i in (64, 256, 1024) for r in (0, 1)]
    df = pd.DataFrame(rows)
    if reference is not None:
        df["reference_energy_j"] = [reference, reference, 2 * reference, 2 * reference, reference, reference]
    return df


def test_the_reference_drift_corrects_the_replay_and_keeps_the_raw_beside_it():
    runs = pd.DataFrame({"reference_energy_j": [12.0, 13.0, 12.5]})
    level = reference_level(runs, _grid(10.0))
    # the grid's readings: 10, 20, 10 (one per point) -> median 10; the replay job's: median 12.5
    assert level["reference_grid_j"] == 10.0 and level["reference_replay_j"] == 12.5
    assert level["reference_drift_pct"] == pytest.approx(25.0)
    assert level["n_reference_grid"] == 3
    row = {"replay_energy_j": 125.0, "estimate_energy_j": 150.0, "model_estimate_energy_j": 100.0}
    got = reference_corrected(row, level)
    assert got["replay_energy_ref_j"] == pytest.approx(100.0)
    assert got["model_error_ref_pct"] == pytest.approx(0.0, abs=1e-9)
    assert got["error_ref_pct"] == pytest.approx(50.0)
    assert row["replay_energy_j"] == 125.0  # the metered replay is never scaled


def test_without_readings_in_either_job_nothing_is_corrected():
    with_runs = pd.DataFrame({"reference_energy_j": [12.0]})
    for runs, grid in ((with_runs, _grid(None)), (pd.DataFrame({"run": [0]}), _grid(10.0))):
        level = reference_level(runs, grid)
        got = reference_corrected({"replay_energy_j": 1.0, "estimate_energy_j": 1.0,
                                   "model_estimate_energy_j": 1.0}, level)
        assert math.isnan(level["reference_drift_pct"]) and math.isnan(got["model_error_ref_pct"])


def _bench():
    spec = importlib.util.spec_from_file_location("reproducibility", REPO / "benchmarks" / "reproducibility.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_benchmark_compares_the_reference_corrected_errors_and_the_grid_jobs_levels(tmp_path):
    bench = _bench()
    row = {"hardware": "cpu-x", "model": "m", "variant": "v", "decoding": "greedy", "workload": "w",
           "error_pct": 30.0, "model_error_pct": 20.0, "model_error_ref_pct": 3.0, "model_flag": ""}
    t = bench.errors_table(pd.DataFrame([row]), pd.DataFrame([{**row, "model_error_pct": -5.0,
                                                                "model_error_ref_pct": 1.0}]))
    assert t["model_move_pts"].tolist() == [-25.0] and t["ref_move_pts"].tolist() == [-2.0]
    assert bench.model_goals(t, bench.REFERENCED, "ref_move_pts") == pytest.approx((3.0, 2.0))
    cell = Path("cpu-x/m/v/greedy")
    for name, level in (("a", 10.0), ("b", 13.0)):
        (tmp_path / name / "results" / "checked" / cell.parent).mkdir(parents=True)
        _grid(level).to_parquet(tmp_path / name / "results" / "checked" / f"{cell}.parquet")
    assert bench.reference_ratio(tmp_path / "a", tmp_path / "b", cell) == pytest.approx(1.3)


def test_serpentine_rounds_read_the_reference_at_every_visit_and_the_level_counts_each_reading():
    from llm_energy.measurement.loop import CellRun, _sweep

    class Counting:
        """Readings 1, 2, 3, ... in the order they are taken."""

        n = 0

        def measure(self):
            self.n += 1
            return float(self.n)

    run = CellRun(FakeBackend(), _protocol(warmup_batches=0, repeat_order="serpentine"), CpuEstimateMeter(4.0),
                  reference=Counting())
    rows = []
    _sweep(run, [Point(8, 2, 1), Point(8, 4, 1), Point(8, 6, 1)], 0.0, rows, 0.0)
    # Rows by point and repeat; visits 0 2 1 1 2 0 (spread_order): each repeat carries the reading taken
    # before it.
    assert [r["reference_energy_j"] for r in rows] == [1.0, 6.0, 3.0, 4.0, 2.0, 5.0]
    level = reference_level(pd.DataFrame({"reference_energy_j": [7.0]}), pd.DataFrame(rows))
    assert level["n_reference_grid"] == 6 and level["reference_grid_j"] == 3.5


class TimedMeter(ScaledMeter):
    """Each window lasts ``seconds`` (the sample's serving time)."""

    def __init__(self, seconds: float):
        super().__init__(1.0)
        self.seconds = seconds

    @contextlib.contextmanager
    def window(self):
        with super().window() as w:
            yield w
        w.duration_s = self.seconds


@pytest.mark.parametrize("seconds, expected", [(0.55, 6), (1.0, 3), (1.6, 2), (2.5, 2), (0.1, 8)])
def test_a_short_replay_is_served_again_until_its_windows_hold_min_metered_s(seconds, expected):
    sample = pd.DataFrame({"input_tokens": [4, 6], "output_tokens": [2, 3]})
    meter = TimedMeter(seconds)
    rows = replay(Served(), meter, sample, 2, seed=0, runs=2, warmup=False, min_metered_s=3.0, max_runs=8)
    assert len(rows) == meter.windows == expected  # at least `runs`, at most max_runs, one window each
    assert [r["run"] for r in rows] == list(range(expected))
    assert len(replay(Served(), TimedMeter(0.1), sample, 2, seed=0, runs=2, warmup=False)) == 2  # default: runs only


def test_the_kernel_runs_on_one_thread_where_vllm_has_silenced_torch_set_num_threads(monkeypatch):
    # vLLM's CPU worker replaces torch.set_num_threads with a function that only warns, in the job's own
    # process; the kernel must still run on one thread and give the job its threads back.
    torch.set_num_threads(2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    seen = []
    kernel = ReferenceKernel(CpuEstimateMeter(4.0), iterations=1)
    work = kernel._work
    monkeypatch.setattr(kernel, "_work", lambda: (seen.append(torch.get_num_threads()), work()))
    assert kernel.measure() > 0
    assert seen == [1]
    assert torch.get_num_threads() == 2
