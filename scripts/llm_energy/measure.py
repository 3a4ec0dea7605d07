"""The measurement loop of one cell: load the model once, sweep its points, meter every window.

Per point: ``warmup_batches`` unmetered batches, then ``repeats`` times a full run (``output_len``
tokens) and a prefill run (one token) in separate windows; decode energy = full - prefill
(optimum-benchmark's split). Every request must generate exactly ``output_len`` tokens.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from . import UserError, hardware
from .backends import Backend
from .meters import make_meter

log = logging.getLogger(__name__)

# Mistral's vocabulary: 0 <unk>, 1 <s>, 2 </s>; everything above is ordinary text.
FIRST_TEXT_TOKEN = 3
VOCAB_SIZE = 32000
# Warm-up batches draw prompts from their own seed stream, apart from the measured repeats.
WARMUP_STREAM = 1_000_000


@dataclass(frozen=True)
class Point:
    input_len: int
    output_len: int
    batch_size: int


def synthetic_prompts(point: Point, repeat: int, seed: int, vocab_size: int = VOCAB_SIZE) -> list[list[int]]:
    """Seeded random token ids of exactly ``input_len`` per request, different for every repeat.

    Different prompts per repeat keep any cache (prefix cache, KV reuse) from shortening a prefill.
    """
    rng = np.random.default_rng([seed, point.input_len, point.output_len, point.batch_size, repeat])
    ids = rng.integers(FIRST_TEXT_TOKEN, vocab_size, size=(point.batch_size, point.input_len))
    return ids.tolist()


def check_hardware(requested: str) -> str:
    """Refuse to measure a cell for hardware this machine is not."""
    here = hardware.detect()
    if requested != here:
        raise UserError(
            f"this machine is {here!r}, but the cell is for {requested!r}: measure it on a {requested} machine "
            f"(`python -m llm_energy measure --hardware {requested} ...` there) and copy the file into "
            f"results/measurements/{requested}/ here")
    return here


def _tree_rss_bytes() -> int:
    import os

    import psutil

    root = psutil.Process(os.getpid())
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_cell(backend: Backend, points: list[Point], *, meter_kind: str = "auto", watts_per_core: float = 4.0,
             require_measured: bool = False, warmup_batches: int = 1, repeats: int = 2, seed: int = 0,
             idle_s: float = 1.0, min_window_s: float = 0.0, labels: dict | None = None) -> pd.DataFrame:
    """Measure every point of one cell with an already constructed (not yet loaded) backend.

    Returns one row per (point, repeat). ``labels`` (hardware, model, variant, decoding, ...) are
    copied into every row.
    """
    meter = make_meter(meter_kind, watts_per_core=watts_per_core, require_measured=require_measured)
    t_load = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - t_load
    log.info("loaded %s with %s in %.1f s; meter %s", backend.model_dir, backend.variant, load_s, meter.source)
    provenance = {**(labels or {}), **backend.describe(), **meter.describe(),
                  "model_load_s": load_s, "start_time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    gpus = hardware.nvml_gpus()
    if gpus:
        provenance.update(gpu_name=gpus[0].name, driver=gpus[0].driver, n_gpus=len(gpus),
                          power_limit_w=gpus[0].power_limit_w)

    # Idle power of the same meter over a quiet window, reported beside (never subtracted from) energy.
    with meter.window() as idle:
        time.sleep(idle_s)
    idle_power_w = idle.avg_power_w

    rows = []
    started = time.perf_counter()
    for k, point in enumerate(points, 1):
        for w in range(warmup_batches):
            backend.run(synthetic_prompts(point, WARMUP_STREAM + w, seed), point.output_len)
        for r in range(repeats):
            prompts = synthetic_prompts(point, r, seed)
            reset = getattr(backend, "reset_peak_memory", None)
            if reset:
                reset()
            full, n_full, result = _metered(meter, backend, prompts, point.output_len, min_window_s)
            _check_tokens(result.output_tokens, point)
            prefill, n_prefill, _ = _metered(meter, backend, prompts, 1, min_window_s)
            peak = getattr(backend, "peak_memory_bytes", lambda: None)()
            rows.append({
                **asdict(point), "repeat": r,
                "energy_j": full.energy_j, "prefill_energy_j": prefill.energy_j,
                "decode_energy_j": full.energy_j - prefill.energy_j,
                "duration_s": full.duration_s, "prefill_duration_s": prefill.duration_s,
                "decode_duration_s": full.duration_s - prefill.duration_s,
                "n_batches_in_window": n_full, "n_prefill_batches_in_window": n_prefill,
                "output_tokens": int(sum(result.output_tokens)),
                "throughput_tok_s": sum(result.output_tokens) / full.duration_s,
                "avg_power_w": full.avg_power_w, "idle_power_w": idle_power_w,
                "peak_memory_bytes": peak if peak is not None else _tree_rss_bytes(),
                "peak_memory_kind": "device-max-allocated" if peak is not None else "host-rss-after-run",
            })
        elapsed = time.perf_counter() - started
        remaining = elapsed / k * (len(points) - k)
        log.info("point %d/%d (in=%d out=%d batch=%d) done; %.0f s elapsed, about %.0f s left",
                 k, len(points), point.input_len, point.output_len, point.batch_size, elapsed, remaining)
    backend.close()
    df = pd.DataFrame(rows)
    for key, value in provenance.items():
        df[key] = value
    return df


@dataclass
class _PerBatch:
    energy_j: float
    duration_s: float

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


def _metered(meter, backend: Backend, prompts, output_len: int, min_window_s: float):
    """Run the same batch back to back until the window lasts ``min_window_s``; per-batch energy and time.

    Energy counters tick every 10-100 ms, so a window of one short batch is mostly quantisation
    noise; a longer window divided by its batch count is not.
    """
    n = 0
    with meter.window() as w:
        t0 = time.perf_counter()
        while True:
            result = backend.run(prompts, output_len)
            n += 1
            if time.perf_counter() - t0 >= min_window_s:
                break
    return _PerBatch(w.energy_j / n, w.duration_s / n), n, result


def _check_tokens(tokens: list[int], point: Point) -> None:
    if len(tokens) != point.batch_size or any(t != point.output_len for t in tokens):
        raise RuntimeError(f"point {point}: requests generated {tokens} tokens, expected {point.output_len} "
                           f"for each of {point.batch_size}")
