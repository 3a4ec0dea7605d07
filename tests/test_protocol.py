"""The measurement protocol with a stand-in backend: batching per window, out-of-memory, probing, locks."""

import time

import pytest

from llm_energy import UserError
from llm_energy.backends.base import Backend, BatchResult
from llm_energy.locks import device_locks
from llm_energy.measure import Point, Protocol, run_cell


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

    def release_memory(self):
        self.released += 1

    def describe(self):
        return {"framework": "fake"}


def _protocol(**kw):
    base = dict(meter="cpu-estimate", warmup_batches=2, repeats=2, idle_s=0.0, min_window_s=0.0)
    return Protocol(**{**base, **kw})


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
    assert all(c[:2] == (4, 8) for c in backend.calls)  # every batch has the point's batch size and prompt
    assert df["output_tokens"].tolist() == [24, 24, 8, 8]


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
