"""The measurement protocol with a stand-in backend: batching per window, out-of-memory, probing, locks."""

import math
import time

import numpy as np
import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.measurement.backends.base import Backend, BatchResult
from llm_energy.measurement.locks import device_locks
from llm_energy.measurement.loop import run_cell
from llm_energy.measurement.meters.base import Windowed
from llm_energy.measurement.protocol import Point, Protocol
from llm_energy.pipeline.cells import Variant


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError."""


class FakeBackend(Backend):
    """Takes 1 ms per request-token of work; batches above ``fits`` run out of memory."""

    def __init__(self, fits=64):
        super().__init__("fake", variant="transformers-eager")
        self.fits = fits
        self.calls = []
        self.released = 0
        self.loads = 0

    def load(self):
        self.loads += 1

    def run(self, prompts, output_len):
        self.calls.append((len(prompts), len(prompts[0]), output_len))
        if len(prompts) > self.fits:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(0.001 * output_len)
        return BatchResult([output_len] * len(prompts))

    def run_padded(self, prompts, output_len):
        return self.run(prompts, output_len)

    def release_memory(self):
        self.released += 1

    def describe(self):
        return {"framework": "fake"}


def _protocol(**kw):
    base = dict(meter="cpu-estimate", warmup_batches=2, repeats=2, idle_s=0.0, min_window_s=0.0,
                pause_s=0, examples_per_point=0, examples_per_point_large_batch=0)
    return Protocol.of(**{**base, **kw})


def test_window_covers_examples_per_point_and_divides_back_to_one_batch():
    backend = FakeBackend()
    df, power = run_cell(backend, [Point(8, 4, 4)], _protocol(examples_per_point=16))
    assert backend.loads == 1
    # 2 warm-up + 1 warm-up of the prefill shape + 2 repeats x (4 full + 4 prefill batches):
    # 16 examples / batch 4 = 4 batches per window.
    assert len(backend.calls) == 3 + 2 * (4 + 4)
    assert [c[2] for c in backend.calls[:3]] == [4, 4, 1]
    assert df["n_batches_in_window"].tolist() == [4, 4] and df["n_prefill_batches_in_window"].tolist() == [4, 4]
    # Per-batch duration, not per-window: one full batch sleeps 4 ms.
    assert df["duration_s"].between(0.004, 0.05).all()
    assert set(df["status"]) == {"ok"} and "git_commit" in df and power.empty


def test_short_warm_up_runs_the_point_shape_for_a_few_tokens_and_measures_the_whole_output():
    backend = FakeBackend()
    df, _ = run_cell(backend, [Point(8, 6, 4), Point(8, 2, 4)], _protocol(warmup_output_tokens=3))
    first, second = backend.calls[:3 + 2 * 2], backend.calls[3 + 2 * 2:]
    # Warm-up: 2 batches of min(output, 3) tokens, then the prefill shape; metered windows: the whole output.
    assert [c[2] for c in first] == [3, 3, 1, 6, 1, 6, 1]
    assert [c[2] for c in second[:3]] == [2, 2, 1]  # never longer than the point's own output
    assert df["warmed_up"].all()
    assert all(c[:2] == (4, 8) for c in backend.calls)  # every batch has the point's batch size and prompt
    assert df["output_tokens"].tolist() == [24, 24, 8, 8]


def _sweep_of_one_shape(**kw):
    """Three output lengths of one (input, batch) shape, then another batch size and a padded point."""
    backend = FakeBackend()
    points = [Point(8, 6, 4), Point(8, 2, 4), Point(8, 9, 4), Point(8, 2, 2), Point(8, 2, 4, "padded")]
    df, _ = run_cell(backend, points, _protocol(warmup_batches=1, **kw))
    return backend, df


def test_a_shapes_prefill_windows_are_measured_at_its_first_point_and_shared_by_the_others():
    backend, df = _sweep_of_one_shape(prefill_per_shape=True)
    prefill_runs = [c for c in backend.calls if c[2] == 1]
    # Per repeat, one prefill window per shape (8x4, 8x2, 8x4 padded), each after one warm-up batch.
    assert len(prefill_runs) == 3 * (1 + 2)
    ok = df.set_index(["output_len", "batch_size", "role", "repeat"])
    for r in (0, 1):
        first = ok.loc[(6, 4, "grid", r)]
        assert first["prefill_output_len"] == 6
        for out in (2, 9):  # the later output lengths take the first point's window of the same repeat
            row = ok.loc[(out, 4, "grid", r)]
            assert row["prefill_output_len"] == 6
            assert row["prefill_energy_j"] == first["prefill_energy_j"]
            assert row["decode_energy_j"] == row["energy_j"] - first["prefill_energy_j"]
        assert ok.loc[(2, 2, "grid", r)]["prefill_output_len"] == 2  # another batch size: its own
        assert ok.loc[(2, 4, "padded", r)]["prefill_output_len"] == 2  # padded prompts: their own
    # The two repeats' windows stay apart: each repeat pairs with its own prefill window.
    assert ok.loc[(9, 4, "grid", 0)]["prefill_duration_s"] != ok.loc[(9, 4, "grid", 1)]["prefill_duration_s"]
    # The cell's metered time counts a shared window once.
    own = df[df["prefill_output_len"] == df["output_len"]]
    assert len(own) == 3 * 2
    expected = (df["duration_s"] * df["n_batches_in_window"]).sum() \
        + (own["prefill_duration_s"] * own["n_prefill_batches_in_window"]).sum()
    assert df["cell_measured_s"].iloc[0] == pytest.approx(expected)


def test_the_papers_protocol_measures_every_points_own_prefill_window_after_its_own_warm_up():
    backend, df = _sweep_of_one_shape()  # the schema's defaults: both per-shape options off
    prefill_runs = [c for c in backend.calls if c[2] == 1]
    assert len(prefill_runs) == 5 * (1 + 2)  # every point: a warm-up of the prefill shape, 2 windows
    assert (df["prefill_output_len"] == df["output_len"]).all()
    assert df["warmed_up"].all()


def _warm_up_outputs(backend):
    """The output lengths of the warm-up batches (the fake runs them with 3 tokens) in call order."""
    return [c[2] for c in backend.calls if c[2] == 3]


def test_eager_variants_warm_up_once_per_shape_and_compiled_ones_at_every_point():
    points = [Point(8, 6, 4), Point(8, 9, 4), Point(8, 6, 2), Point(8, 12, 4)]
    eager = FakeBackend()
    df, _ = run_cell(eager, points, _protocol(warmup_batches=1, warmup_output_tokens=3, warmup_per_shape=True))
    assert len(_warm_up_outputs(eager)) == 2  # the 8x4 and 8x2 shapes' first points
    warmed = df.groupby(["output_len", "batch_size"])["warmed_up"].first()
    assert warmed[(6, 4)] and warmed[(6, 2)] and not warmed[(9, 4)] and not warmed[(12, 4)]
    assert eager.calls[0][2] == 3 and eager.calls[1][2] == 1  # the first point still warms both shapes

    compiled = FakeBackend()
    compiled.variant = Variant.parse("transformers-compile")
    df, _ = run_cell(compiled, points, _protocol(warmup_batches=1, warmup_output_tokens=3, warmup_per_shape=True))
    assert len(_warm_up_outputs(compiled)) == 4 and df["warmed_up"].all()


def test_oom_is_a_result_and_the_sweep_goes_on():
    backend = FakeBackend(fits=4)
    df, _ = run_cell(backend, [Point(8, 2, 8, "sweep"), Point(8, 2, 2, "sweep")], _protocol())
    oom = df[df["batch_size"] == 8]
    assert oom["status"].tolist() == ["oom"] and oom["energy_j"].isna().all()
    ok = df[df["batch_size"] == 2]
    assert ok["status"].tolist() == ["ok", "ok"] and (ok["energy_j"] >= 0).all()
    assert backend.released == 1


def test_probing_measures_each_bin_at_the_largest_batch_that_fits():
    backend = FakeBackend(fits=12)
    df, _ = run_cell(backend, [Point(8, 2, 1, "grid"), Point(8, 4, 1, "sweep")],
                     _protocol(max_batch_probe=[1, 4, 8, 16, 32]))
    grid = df[df["role"] == "grid"]
    assert set(grid["batch_size"]) == {8} and set(grid["status"]) == {"ok"}
    assert set(df[df["role"] == "sweep"]["batch_size"]) == {1}  # sweeps keep their batch size
    probes = [c[0] for c in backend.calls[:4]]
    assert probes == [1, 4, 8, 16]  # ascending, stopping at the first that does not fit


def test_non_oom_errors_are_not_swallowed():
    class Broken(FakeBackend):
        def run(self, prompts, output_len):
            raise ValueError("bad shape")

    with pytest.raises(ValueError, match="bad shape"):
        run_cell(Broken(), [Point(8, 2, 1)], _protocol())


def test_wrong_token_count_stops_the_cell():
    class Short(FakeBackend):
        def run(self, prompts, output_len):
            return BatchResult([output_len - 1] * len(prompts))

    with pytest.raises(RuntimeError, match="expected 4"):
        run_cell(Short(), [Point(8, 4, 2)], _protocol(warmup_batches=0))


def test_device_lock_keeps_a_second_measurement_out(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ENERGY_LOCK_DIR", str(tmp_path))
    with device_locks(["GPU-a"]):
        with pytest.raises(UserError, match=r"device GPU-a is being measured by pid"):
            with device_locks(["GPU-a"], poll_s=0.01, timeout_s=0.02):
                pass
        with device_locks(["GPU-b"], timeout_s=0):  # another device is free
            pass
    with device_locks(["GPU-a"], timeout_s=0):  # released
        pass


def test_replay_control_points_meter_a_full_and_a_prefill_window_per_repeat():
    from llm_energy.estimates.replay import measure_controls

    backend = FakeBackend()
    protocol = _protocol(warmup_batches=1)
    controls = measure_controls(backend, protocol, protocol.make_meter(), [(8, 6), (16, 4)], 2)
    # Per point: a warm-up batch and its prefill, then per repeat a full window and a prefill window
    # (one output token), so that the replay job's drift of each phase is measured apart.
    assert [c[1:] for c in backend.calls] == ([(8, 6), (8, 1)] * 3 + [(16, 4), (16, 1)] * 3)
    assert controls["control_input_len"] == [8, 16] and controls["control_batch_size"] == 2
    full, prefill = controls["control_energy_j"], controls["control_prefill_energy_j"]
    assert all(0 <= p < f for f, p in zip(full, prefill))  # numbers (NaN fails): a prefill is part of its batch
    # Where the points' prefill is too small a share to be read, no prefill window is measured at all.
    from llm_energy.estimates.replay import Controls

    backend = FakeBackend()
    unread = Controls(backend, protocol, protocol.make_meter(), [(8, 6)], 2, prefill_windows=False)
    unread.before()
    unread.after()
    assert [c[1:] for c in backend.calls] == [(8, 6)] * 3
    assert math.isnan(unread.columns()["control_prefill_energy_j"][0])


def test_the_protocol_has_the_schemas_names_and_only_the_schemas_defaults():
    from dataclasses import MISSING, fields

    from llm_energy.measurement.backends.base import Backend
    from llm_energy.pipeline.config import load_schema, section_defaults

    keys = load_schema()["properties"]["measurement"]["properties"]
    assert {f.name for f in fields(Protocol)} <= set(keys)  # the schema's names, no renaming
    assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(Protocol))  # no default here
    defaults = section_defaults("measurement")
    paper = Protocol.of()
    assert all(getattr(paper, f.name) == defaults[f.name] for f in fields(Protocol))
    assert (paper.warmup_batches, paper.repeats, paper.min_window_s) == (20, 3, 5.0)  # the paper's protocol
    assert Protocol.of(repeats=1).repeats == 1
    with pytest.raises(TypeError, match="not a protocol key: watts_per_core"):
        Protocol.of(watts_per_core=1.0)
    # The decoding settings a backend falls back to are the schema's too.

    class Bare(Backend):
        def load(self):
            pass

        def run(self, prompts, output_len):
            pass

        def describe(self):
            return {}

    assert Bare("m", variant="transformers-eager").options == section_defaults("decoding")


class DriftingMeter(Windowed):
    """A counter whose level rises by ``drift`` per batch run (a shared CPU slowing down over the job):
    each batch adds its work (request-tokens) times 1 + ``drift`` x the batches run before it."""

    source = "cpu-estimate"

    def __init__(self, drift=0.02):
        self.total, self.batches, self.drift = 0.0, 0, drift

    def read(self):
        return self.total

    def add(self, work):
        self.total += work * (1 + self.drift * self.batches)
        self.batches += 1


class MeteredFake(FakeBackend):
    def __init__(self, meter, variant="transformers-eager"):
        super().__init__()
        self.meter, self.variant = meter, Variant.parse(variant)

    def run(self, prompts, output_len):
        self.meter.add(len(prompts) * (len(prompts[0]) + output_len))
        return BatchResult([output_len] * len(prompts))


def _drifting_sweep(points, variant="transformers-eager", **kw):
    from llm_energy.measurement.loop import CellRun, _sweep

    meter = DriftingMeter()
    backend = MeteredFake(meter, variant)
    run = CellRun(backend, _protocol(**{"warmup_batches": 0, **kw}), meter)
    rows = []
    _sweep(run, points, 0.0, rows, 0.0)
    df = pd.DataFrame(rows)
    work = df["batch_size"] * (df["input_len"] + df["output_len"])
    return df, df.assign(level=df["energy_j"] / work).groupby(["input_len", "output_len"], sort=False)["level"].mean()


def test_visits_put_every_points_repeats_at_the_same_mean_time():
    from llm_energy.measurement.protocol import visits

    order = visits(4, 3, interleaved=True)
    assert [k for k, _ in order] == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3]
    assert all(len(reps) == 1 for _, reps in order)
    assert [reps.start for k, reps in order if k == 2] == [0, 1, 2]  # each repeat once, in order
    even = visits(5, 2, interleaved=True)
    times = {k: np.mean([t for t, (j, _) in enumerate(even) if j == k]) for k in range(5)}
    assert len(set(times.values())) == 1  # with an even number of rounds, the same mean time exactly
    assert visits(3, 2, interleaved=False) == [(0, range(2)), (1, range(2)), (2, range(2))]


def test_serpentine_repeats_make_a_drift_of_the_meter_fall_alike_on_every_point():
    points = [Point(8, 4, 2), Point(64, 4, 2), Point(8, 32, 2), Point(64, 32, 2)]
    df, level = _drifting_sweep(points, repeat_order="serpentine")
    # The same level of the meter on every point (the drift is linear and each point's windows are
    # at the same mean time); consecutive repeats tilt the grid: the later points read higher.
    assert level.max() / level.min() == pytest.approx(1.0, abs=1e-9)
    _, tilted = _drifting_sweep(points, repeat_order="consecutive")
    assert tilted.is_monotonic_increasing and tilted.iloc[-1] / tilted.iloc[0] > 1.1
    # Rows come back by point and repeat; sweep_index says when each window was measured.
    assert list(zip(df["output_len"], df["input_len"], df["repeat"])) == \
        [(o, i, r) for i, o in [(8, 4), (64, 4), (8, 32), (64, 32)] for r in (0, 1)]
    first = df[df["input_len"].eq(8) & df["output_len"].eq(4)]
    assert first["sweep_index"].tolist() == [0, 7]
    assert df["warmed_up"].all()  # each point warmed up, at its first visit


class BumpMeter(DriftingMeter):
    """A counter whose level rises by up to ``bump`` through the middle of the job and falls back (as on
    the default's run of 2026-12-07, where the reference kernel read +10-16 % over the middle 40 % of
    the transformers grid job): batch n of ``total`` costs its work x (1 + bump sin(pi n / total))."""

    def __init__(self, total, bump=0.15):
        super().__init__()
        self.n_total, self.bump = total, bump

    def add(self, work):
        self.total += work * (1 + self.bump * math.sin(math.pi * self.batches / self.n_total))
        self.batches += 1


class PaddingFake(MeteredFake):
    """A padded batch is the work of its longest prompt times 1.1 (the masked attention path's extra)."""

    def run_padded(self, prompts, output_len):
        self.meter.add(1.1 * len(prompts) * (max(len(p) for p in prompts) + output_len))
        return BatchResult([output_len] * len(prompts))


def _bump_sweep(monkeypatch, in_order=False):
    """The default's transformers grid (4 x 4 at batch 4) and its padded points, in serpentine rounds
    under a :class:`BumpMeter`; ``in_order``: the rounds in the points' sorted order (as before
    :func:`spread_order`). Each point's level: its energy per unit of true work."""
    from llm_energy.measurement import loop
    from llm_energy.measurement.loop import CellRun, _sweep

    if in_order:
        monkeypatch.setattr(loop, "spread_order", lambda pts: list(range(len(pts))))
    points = [Point(i, o, 4) for i in (64, 256, 1024, 4096) for o in (8, 32, 128, 512)]
    points += [Point(i, o, 4, "padded") for i, o in ((64, 8), (64, 128), (1024, 128), (4096, 8))]
    total = None
    for bump in (0.0, 0.15):  # a first sweep counts the job's batches (prefill windows included)
        meter = BumpMeter(total or 1, bump)
        run = CellRun(PaddingFake(meter), _protocol(warmup_batches=0, repeat_order="serpentine"), meter)
        rows = []
        _sweep(run, points, 0.0, rows, 0.0)
        total = meter.batches
    df = pd.DataFrame(rows)
    work = df["batch_size"] * (df["input_len"] + df["output_len"]) * np.where(df["role"] == "padded", 1.1, 1.0)
    return df.assign(level=df["energy_j"] / work).groupby(["input_len", "output_len", "role"])["level"].mean()


def test_serpentine_rounds_spread_the_grid_so_a_bump_of_the_meter_bends_neither_a_corner_nor_the_padding(
        monkeypatch):
    level = _bump_sweep(monkeypatch)
    old = _bump_sweep(monkeypatch, in_order=True)
    padded = [k for k in level.index if k[2] == "padded"]

    def padding_error(lv):  # the padded batches' extra cost as measured, against its true 10 %
        return max(abs(lv[k] / lv[(k[0], k[1], "grid")] - 1) for k in padded)

    def corner(lv):  # the longest inputs' level against the shortest's
        grid = lv.xs("grid", level="role")
        return grid.xs(4096, level="input_len").mean() / grid.xs(64, level="input_len").mean() - 1

    # Each padded point is measured right after its twin (before it in the reversed round): the
    # padding's extra cost comes out within 1.5 % of the truth, where the sorted order put all padded
    # points together in the middle of the round, near the bump's top, and read it up to 14 % high.
    assert padding_error(level) < 0.015 and padding_error(old) > 0.1
    # The longest inputs sat next to the padded points in the sorted order and read 10 % above the
    # shortest; spread over the round, less than half of that (a bump still falls on the points at the
    # middle of the rounds, now a mix of shapes: the reference kernel's reading removes the rest).
    assert 0 < corner(level) < 0.5 * corner(old) and corner(old) > 0.08


def test_spread_order_visits_every_point_once_with_each_padded_point_after_its_twin():
    from llm_energy.measurement.protocol import spread_order, visits

    points = [Point(i, o, 4) for i in (64, 256, 1024, 4096) for o in (8, 32, 128, 512)]
    points += [Point(i, 8, 1, "sweep") for i in (64, 256, 1024)] + [Point(4096, 8, 4, "padded")]
    order = spread_order(points)
    assert sorted(order) == list(range(len(points)))
    twin = points.index(Point(4096, 8, 4))
    assert order.index(len(points) - 1) == order.index(twin) + 1
    # Any 8 consecutive places of the round hold both the shortest and the longest half of the inputs
    # and of the outputs (in sorted order the first 8 were all at inputs 64 and 256).
    for start in range(len(order) - 7):
        stretch = [points[k] for k in order[start:start + 8]]
        assert {p.input_len <= 256 for p in stretch} == {True, False}
        assert {p.output_len <= 32 for p in stretch} == {True, False}
    assert [k for k, _ in visits(len(points), 2, True, order)] == order + order[::-1]
    with pytest.raises(ValueError, match="not an order"):
        visits(3, 2, True, [0, 0, 1])


def test_a_compiled_variant_keeps_consecutive_repeats_and_warms_up_once_per_point():
    points = [Point(8, 4, 2), Point(64, 4, 2)]
    df, level = _drifting_sweep(points, variant="transformers-compile", repeat_order="serpentine",
                                warmup_batches=1)
    assert df["sweep_index"].tolist() == [0, 1, 2, 3]  # repeats 0 and 1 of a point, then the next
    assert level.iloc[1] > level.iloc[0]


def test_an_oom_point_is_not_visited_again_in_later_rounds():
    backend = FakeBackend(fits=4)
    df, _ = run_cell(backend, [Point(8, 2, 8), Point(8, 2, 2)], _protocol(repeat_order="serpentine"))
    assert df.loc[df["batch_size"] == 8, "status"].tolist() == ["oom"]
    assert df.loc[df["batch_size"] == 2, "repeat"].tolist() == [0, 1]
    assert sum(1 for c in backend.calls if c[0] == 8) == 1  # the failed warm-up batch, once


def test_replay_controls_bracket_the_replay_runs_with_serpentine_repeats():
    from llm_energy.estimates.replay import Controls

    meter = DriftingMeter()
    backend = MeteredFake(meter)
    controls = Controls(backend, _protocol(warmup_batches=0, repeat_order="serpentine"), meter, [(8, 6)], 2)
    controls.before()
    runs_at = meter.batches
    for _ in range(10):  # the replay's batches
        backend.run([[1] * 8] * 2, 6)
    controls.after()
    cols = controls.columns()
    start, end = cols["control_start_energy_j"][0], cols["control_end_energy_j"][0]
    work = 2 * (8 + 6)
    assert runs_at == 2  # its one repeat before the runs: a full window, then its prefill window
    assert start == pytest.approx(work)  # the full window was the job's first batch: the meter's level 1
    assert end > start  # the meter's level rose over the runs; the mean brackets them
    assert cols["control_energy_j"][0] == pytest.approx((start + end) / 2)
    consecutive = Controls(backend, _protocol(warmup_batches=0), meter, [(8, 6)], 2)
    consecutive.before()
    consecutive.after()
    assert "control_end_energy_j" not in consecutive.columns()  # all repeats before the replay


def test_replay_controls_take_their_own_repeats_half_before_and_half_after_the_runs():
    from llm_energy.estimates.replay import Controls

    backend = FakeBackend()
    controls = Controls(backend, _protocol(warmup_batches=0, repeat_order="serpentine"), _protocol().make_meter(),
                        [(8, 6)], 2, prefill_windows=False, repeats=4)
    controls.before()
    assert [c[1:] for c in backend.calls] == [(8, 6)] * 2  # 2 of the 4 windows before the runs
    controls.after()
    assert [c[1:] for c in backend.calls] == [(8, 6)] * 4  # the grid's protocol has 2 repeats; here 4
    assert [len(v[0]) for v in controls.energies] == [2, 2]
