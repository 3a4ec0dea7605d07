"""The measurement loop of one cell: load the model once, sweep its points, meter every window.

Per point: ``warmup_batches`` unmetered batches (of ``warmup_output_tokens`` tokens when set, else the
point's full ``output_len``), then ``repeats`` times a full run (``output_len`` tokens) and a prefill
run (one token) in separate windows, with a pause between repeats; decode energy = full - prefill
(optimum-benchmark's split). A window runs its batch back to back until it holds
``examples_per_point`` requests (the paper: 1,024) and lasts ``min_window_s``, and is divided by the
number of batches, so every energy is per batch. Every request must generate exactly ``output_len``
tokens. Out-of-memory is a result (``status = "oom"``), not a crash.

Work that does not depend on a point's output length can be done once per shape (input length,
batch size, padded or not); both are off in the paper's protocol (the schema's defaults):

- ``prefill_per_shape``: a prefill run is the same work whatever the output length, so each
  repeat's prefill window of a shape is measured at the shape's first point, right after that
  point's full window, and the shape's later points (its other output lengths) take it; a row's
  ``prefill_output_len`` names the point whose repeat measured its prefill window.
- ``warmup_per_shape``: an eager variant warms up at a shape's first point only; the later points
  run the same kernels on the same shapes the earlier windows just ran. Compiled variants warm up
  at every point (transformers' static KV cache is sized by the output length, so a new output
  length compiles anew). A row's ``warmed_up`` says whether its point ran warm-up batches.

``repeat_order: serpentine`` (the paper's: consecutive) measures the repeats in rounds, one repeat of
every point per round, in order and then in reverse (:func:`~llm_energy.measurement.protocol.visits`):
on a meter whose level drifts over minutes (a shared CPU's speed), each point's mean then sits at the
same mean time of the job, so the drift moves every point alike instead of bending the grid where
it happened. A point warms up at its first visit only; compiled variants keep consecutive repeats.
A row's ``sweep_index`` is its window's place in the job's order.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy.measurement.backends import Backend, Unsupported
from llm_energy.measurement.eta import estimate_remaining_s, point_cost
from llm_energy.measurement.job import MeteredJob
from llm_energy.measurement.partial import keep_partial
from llm_energy.measurement.prompts import RandomPrompts
from llm_energy.measurement.protocol import Point, Protocol, padded_lengths, spread_order, visits
from llm_energy.measurement.reference import reference_for
from llm_energy.pipeline.cells import SPECULATIVE
from llm_energy.pipeline.manifest import git_commit
from llm_energy.pipeline.roles import GRID

log = logging.getLogger(__name__)

# Mistral's vocabulary: 0 <unk>, 1 <s>, 2 </s>; everything above is ordinary text.
FIRST_TEXT_TOKEN = 3
VOCAB_SIZE = 32000
# Warm-up and probe batches draw prompts from their own seed streams, apart from the measured repeats.
WARMUP_STREAM = 1_000_000
PROBE_STREAM = 2_000_000
# With a prompt cache on (vLLM beam search), every batch of a window draws fresh prompts from these.
FRESH_STREAM = 3_000_000
PREFILL_STREAM = 4_000_000



def synthetic_prompts(point: Point, repeat: int, seed: int, vocab_size: int = VOCAB_SIZE) -> list[list[int]]:
    """Seeded random token ids of exactly ``input_len`` per request, different for every repeat.

    Different prompts per repeat keep any cache (prefix cache, KV reuse) from shortening a prefill.
    """
    return RandomPrompts(seed, FIRST_TEXT_TOKEN, vocab_size)(point.input_len, point.output_len, point.batch_size,
                                                             repeat)




def is_oom(exc: BaseException) -> bool:
    """Whether an exception is the device (or host) running out of memory."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()


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


@dataclass
class _PerBatch:
    energy_j: float
    duration_s: float
    timeline_energy_j: float
    n_samples: int
    state: dict
    device_energy_j: list[float] = field(default_factory=list)  # per GPU, where the meter reads them apart

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


_NO_WINDOW = _PerBatch(math.nan, math.nan, math.nan, 0, {})  # a prefill window not measured


def acceptance(before: tuple[int, int] | None, after: tuple[int, int] | None, decoding: str) -> dict:
    """Speculative decoding's draft tokens proposed and accepted in a window, and their ratio; NaN (never
    0) where the backend cannot count them, with ``acceptance_note`` saying so; nothing for other decodings."""
    if decoding not in SPECULATIVE:
        return {}
    if before is None or after is None:
        return {"spec_proposed_tokens": math.nan, "spec_accepted_tokens": math.nan, "acceptance_rate": math.nan,
                "acceptance_note": "unknown: the backend does not report speculative decoding's counters"}
    proposed, accepted = after[0] - before[0], after[1] - before[1]
    return {"spec_proposed_tokens": proposed, "spec_accepted_tokens": accepted,
            "acceptance_rate": accepted / proposed if proposed else math.nan,
            "acceptance_note": "" if proposed else "no draft token proposed in the window"}


class CellRun:
    """Measures the points of one cell with one loaded backend and one meter."""

    def __init__(self, backend: Backend, protocol: Protocol, meter, prompts=None, prefill_windows: bool = True,
                 reference=None):
        """``prefill_windows=False``: full windows only (rows without a prefill/decode split), for
        points whose energy per batch is all that is read (the replay job's control points).
        ``reference``: a :class:`~llm_energy.measurement.reference.ReferenceKernel` measured before each
        point (``reference_energy_j``, the meter's level there; NaN without one)."""
        self.prefill_windows = prefill_windows
        self.reference = reference
        self.prompts = prompts or RandomPrompts(protocol.seed, FIRST_TEXT_TOKEN, VOCAB_SIZE)
        self.backend = backend
        self.p = protocol
        self.meter = meter
        self.power_rows: list[dict] = []
        self.warmup_s = 0.0  # unmetered work the protocol asks for (warm-up, probing, pauses)
        # With prefill_per_shape: (input_len, batch_size, padded) -> {repeat: (prefill window, batches,
        # output_len of the point that measured it)}.
        self.prefills: dict[tuple[int, int, bool], dict[int, tuple[_PerBatch, int, int]]] = {}
        self.measured_shapes: set[tuple[int, int, bool]] = set()  # shapes with a point measured (all repeats ok)
        self.warmed: set[Point] = set()  # points that ran warm-up batches (at their first visit)

    def _metered(self, point: Point, prompts, output_len: int, min_batches: int, tag: dict, fresh=None):
        """Run the point's batch back to back until the window holds ``min_batches`` and lasts ``min_window_s``.

        Energy counters tick every 10-100 ms, so a window of one short batch is mostly quantisation
        noise; a longer window divided by its batch count is not. ``fresh(k)`` gives batch k its own
        prompts when the backend caches prompts (else a repeated batch would skip its prefill).
        """
        n = 0
        with self.meter.window() as w:
            t0 = time.perf_counter()
            while True:
                if fresh is not None or point.padded:  # one batch at a time (fresh prompts, or padded)
                    result = self._run(point, prompts if fresh is None or n == 0 else fresh(n), output_len)
                    n += 1
                else:
                    k = max(min_batches - n, 1)
                    result = self.backend.run_many(prompts, output_len, k)
                    n += k
                if n >= min_batches and time.perf_counter() - t0 >= self.p.min_window_s:
                    break
        avg = dict(w.power_avg_samples)  # the driver's 1-s average beside the timeline's reading
        self.power_rows += [{**tag, "t_s": t, "power_w": pw, **({"power_avg_w": avg.get(t)} if avg else {})}
                            for t, pw in w.power_samples]
        return _PerBatch(w.energy_j / n, w.duration_s / n, w.timeline_energy_j / n, len(w.power_samples),
                         w.state, [e / n for e in w.device_energy_j]), n, result

    def probe_max_batch(self, input_len: int, output_len: int) -> tuple[int | None, list[int]]:
        """Largest candidate batch that runs (ascending, stopping at the first that does not fit)."""
        fits, failed = None, []
        limit = self.backend.max_concurrent(input_len, output_len)
        for b in sorted(self.p.max_batch_probe):
            if limit is not None and b > limit:
                failed.append(b)
                break
            try:
                self.backend.run(self.prompts(input_len, output_len, b, PROBE_STREAM), output_len)
                fits = b
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is a result; others re-raise
                if not (is_oom(exc) or isinstance(exc, Unsupported)):
                    raise
                self.backend.release_memory()
                failed.append(b)
                break
        return fits, failed

    def _prompts(self, point: Point, stream: int) -> list[list[int]]:
        prompts = self.prompts(point.input_len, point.output_len, point.batch_size, stream)
        if point.padded:
            prompts = [p[len(p) - n:] for p, n in zip(prompts, padded_lengths(point.input_len, point.batch_size))]
        return prompts

    def _run(self, point: Point, prompts, output_len: int):
        """One batch of the point: padded to its longest prompt for a padded point."""
        return (self.backend.run_padded if point.padded else self.backend.run)(prompts, output_len)

    def _fresh(self, point: Point, stream: int):
        """Prompts of batch k of a window from their own stream (for backends that cache prompts)."""
        return lambda k: self._prompts(point, stream + k)

    def _shared_prefill(self, point: Point) -> dict[int, tuple[_PerBatch, int, int]] | None:
        """The prefill windows already measured for the point's shape, by repeat (None: measure its own)."""
        if not self.p.prefill_per_shape:
            return None
        return self.prefills.setdefault(point.shape, {})

    def _warm_up(self, point: Point, prefill: bool = True) -> None:
        """Unmetered batches of the point's shape, and (``prefill``: when this point measures a prefill
        window) of its prefill window's shape: compiled variants compile (and capture) per shape, which
        must happen here, not inside a metered window.

        With ``warmup_output_tokens`` the warm-up batches stop after that many tokens: the same prefill
        shape and batch, the first decode steps (where a compiler specialises or marks the length
        dynamic), without paying the point's whole decode once more unmetered."""
        t_warm = time.perf_counter()
        warm_len = point.output_len
        if self.p.warmup_output_tokens is not None:
            warm_len = min(point.output_len, self.p.warmup_output_tokens)
        for w in range(self.p.warmup_batches):
            self._run(point, self._prompts(point, WARMUP_STREAM + w), warm_len)
        if self.p.warmup_batches and prefill:
            self._run(point, self._prompts(point, WARMUP_STREAM + self.p.warmup_batches), 1)
        self.warmup_s += time.perf_counter() - t_warm

    def _measure_repeat(self, point: Point, r: int, min_batches: int, tag: dict, idle_power_w: float) -> dict:
        """One repeat of a point: a full-length window and a prefill window; the row of the repeat."""
        prompts = self._prompts(point, r)
        self.backend.reset_peak_memory()
        full_fresh = prefill_fresh = None
        prefill_prompts = prompts
        if self.backend.prefix_caching:
            full_fresh = self._fresh(point, FRESH_STREAM + 1000 * r)
            prefill_fresh = self._fresh(point, PREFILL_STREAM + 1000 * r)
            prefill_prompts = prefill_fresh(0)
        spec_before = self.backend.spec_counts()
        full, n_full, result = self._metered(point, prompts, point.output_len, min_batches,
                                             {**tag, "phase": "full"}, full_fresh)
        spec = acceptance(spec_before, self.backend.spec_counts(), self.backend.decoding)
        _check_tokens(result.output_tokens, point)
        shared = self._shared_prefill(point) if self.prefill_windows else None
        if not self.prefill_windows:
            prefill, n_prefill, prefill_output_len = _NO_WINDOW, 0, None
        elif shared is not None and r in shared:
            prefill, n_prefill, prefill_output_len = shared[r]
        else:
            prefill, n_prefill, _ = self._metered(point, prefill_prompts, 1, min_batches,
                                                  {**tag, "phase": "prefill"}, prefill_fresh)
            prefill_output_len = point.output_len
            if shared is not None:
                shared[r] = (prefill, n_prefill, prefill_output_len)
        peak = self.backend.peak_memory_bytes()
        return {
            **tag, "status": "ok",
            "energy_j": full.energy_j, "prefill_energy_j": prefill.energy_j,
            "decode_energy_j": full.energy_j - prefill.energy_j,
            "timeline_energy_j": full.timeline_energy_j, "n_power_samples": full.n_samples,
            "duration_s": full.duration_s, "prefill_duration_s": prefill.duration_s,
            "decode_duration_s": full.duration_s - prefill.duration_s,
            "n_batches_in_window": n_full, "n_prefill_batches_in_window": n_prefill,
            "prefill_output_len": prefill_output_len,
            "output_tokens": int(sum(result.output_tokens)),
            "throughput_tok_s": sum(result.output_tokens) / full.duration_s,
            "avg_power_w": full.avg_power_w, "idle_power_w": idle_power_w,
            "peak_memory_bytes": peak if peak is not None else _tree_rss_bytes(),
            "peak_memory_kind": "device-max-allocated" if peak is not None else "host-rss-after-run",
            **full.state, **_per_gpu(full, prefill), **spec,
        }

    def _cool_down(self) -> float:
        """With ``cooldown_temp_c``, wait (unmetered) until the GPUs are below it or ``cooldown_max_s``
        has passed, so that every repeat starts at about the same temperature; the seconds waited."""
        if self.p.cooldown_temp_c is None:
            return 0.0
        waited = self.meter.cool_down(self.p.cooldown_temp_c, self.p.cooldown_max_s)
        self.warmup_s += waited
        return waited

    def measure_reference(self) -> float:
        """The reference kernel's energy now (unmetered protocol time for the point); NaN without one."""
        if self.reference is None:
            return math.nan
        t0 = time.perf_counter()
        energy = self.reference.measure()
        self.warmup_s += time.perf_counter() - t0
        return energy

    def measure_point(self, point: Point, idle_power_w: float, repeats: range | None = None) -> list[dict]:
        """Rows for every repeat of one point (``repeats``: only those, one visit of a point measured in
        rounds); one ``oom`` row when it does not fit. The point warms up at its first visit only."""
        repeats = range(self.p.repeats) if repeats is None else repeats
        base = {"input_len": point.input_len, "output_len": point.output_len, "batch_size": point.batch_size,
                "role": point.role}
        try:
            base["reference_energy_j"] = self.measure_reference()
            revisit = repeats.start > 0 and not self.backend.variant.compiled
            warm = revisit or (self.p.warmup_per_shape and not self.backend.variant.compiled
                               and point.shape in self.measured_shapes)
            if not warm:
                shared = self._shared_prefill(point)
                self._warm_up(point, prefill=self.prefill_windows and (shared is None or len(shared) < self.p.repeats))
                self.warmed.add(point)
            rows = []
            min_batches = self.p.batches_per_window(point.batch_size)
            for r in repeats:
                if r and self.p.pause_s:
                    time.sleep(self.p.pause_s)
                    self.warmup_s += self.p.pause_s
                cooldown_s = self._cool_down()
                rows.append({**self._measure_repeat(point, r, min_batches, {**base, "repeat": r}, idle_power_w),
                             "cooldown_s": cooldown_s, "warmed_up": point in self.warmed})
            self.measured_shapes.add(point.shape)
            return rows
        except Unsupported as exc:
            log.warning("point in=%d out=%d batch=%d is not supported here: %s", point.input_len, point.output_len,
                        point.batch_size, exc)
            return [{**base, "repeat": repeats.start, "status": "unsupported", "output_tokens": 0,
                     "reason": str(exc)}]
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is a result; others re-raise
            if not is_oom(exc):
                raise
            self.backend.release_memory()
            log.warning("point in=%d out=%d batch=%d does not fit: %s", point.input_len, point.output_len,
                        point.batch_size, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return [{**base, "repeat": repeats.start, "status": "oom", "output_tokens": 0}]


def plan_points(run: CellRun, points: list[Point]) -> list[Point]:
    """With probing on, replace each grid point's batch size by the largest that fits there."""
    if not run.p.max_batch_probe:
        return points
    planned = []
    for pt in points:
        if "grid" not in pt.role:
            planned.append(pt)
            continue
        fits, failed = run.probe_max_batch(pt.input_len, pt.output_len)
        log.info("max batch at in=%d out=%d: %s (did not fit: %s)", pt.input_len, pt.output_len, fits,
                 failed or "none")
        if fits is None:
            planned.append(Point(pt.input_len, pt.output_len, min(run.p.max_batch_probe), pt.role))
        else:
            planned.append(Point(pt.input_len, pt.output_len, fits, pt.role))
    return planned



def run_cell(backend: Backend, points: list[Point], protocol: Protocol | None = None,
             labels: dict | None = None, prompts=None,
             partial_out: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every point of one cell with a constructed (not yet loaded) backend: :func:`run_job` in a
    :class:`~llm_energy.measurement.job.MeteredJob` of ``backend`` and ``protocol``."""
    return run_job(MeteredJob(backend, protocol or Protocol.of()), points, labels=labels, prompts=prompts,
                   partial_out=partial_out)


def run_job(job: MeteredJob, points: list[Point], labels: dict | None = None, prompts=None,
            partial_out: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every point of one cell in ``job`` (not yet entered).

    Returns one row per (point, repeat), and the power timeline of every window (empty without a
    power-reading meter). ``labels`` (hardware, model, variant, decoding, ...) go into every row.
    The job holds a lock on its devices from before the model loads until the sweep ends, and meters
    the GPUs the backend runs on (its tensor-parallel size). When a metered GPU stops answering
    mid-cell, the rows measured so far are written to ``partial_out`` (see
    :func:`~llm_energy.measurement.partial.partial_path`; no stage reads it as a measurement) and the
    cell stops with one line.
    """
    backend, p = job.backend, job.protocol
    cell_started = time.perf_counter()
    rows: list[dict] = []
    provenance: dict = {}
    job.on_lost = lambda lost: keep_partial(rows, provenance, partial_out, lost)
    with job:
        meter, load_s = job.meter, job.load_s
        log.info("loaded %s with %s in %.1f s; meter %s", backend.model_dir, backend.variant, load_s, meter.source)
        provenance.update({**(labels or {}), **backend.describe(), **meter.describe(), "model_load_s": load_s,
                           "git_commit": git_commit(), "start_time": datetime.now(UTC).isoformat(timespec="seconds")})
        # Idle power of the same meter over a quiet window, reported beside (never subtracted from) energy.
        with meter.window() as idle:
            time.sleep(p.idle_s)
        # The meter's level through the job, where a replay is compared with this cell's fit: grid cells.
        replayed = any(GRID in pt.role.split(",") for pt in points)
        run = CellRun(backend, p, meter, prompts, reference=reference_for(meter) if replayed else None)
        t_probe = time.perf_counter()
        points = plan_points(run, points)
        run.warmup_s += time.perf_counter() - t_probe
        sweep_s = _sweep(run, points, idle.avg_power_w, rows, load_s)
    statuses = pd.Series([r["status"] for r in rows], dtype=str).value_counts().to_dict()
    log.info("cell %s done: %d points (%s) in %.0f s (model load %.1f s, sweep %.1f s)",
             "/".join(str((labels or {}).get(k, "?")) for k in ("hardware", "model", "variant", "decoding")),
             len(points), ", ".join(f"{n} rows {s}" for s, n in sorted(statuses.items())) or "no rows",
             time.perf_counter() - cell_started, load_s, sweep_s)
    return _cell_table(rows, provenance, run, cell_started), pd.DataFrame(run.power_rows)


def _sweep(run: CellRun, points: list[Point], idle_power_w: float, rows: list[dict], load_s: float) -> float:
    """Measure the points (in the order of :func:`visits`, serpentine rounds in :func:`spread_order`),
    appending their rows to ``rows`` as each visit ends (so that a cell stopped midway keeps them),
    with progress and an ETA in the log; the sweep's seconds. Each row's ``sweep_index`` is its
    window's place in the job's order (0 first); ``rows`` ends sorted by point and repeat whatever the
    order."""
    interleaved = run.p.interleaved(run.backend.variant.compiled)
    order = visits(len(points), run.p.repeats, interleaved, spread_order(points) if interleaved else None)
    share = [len(reps) / run.p.repeats for _, reps in order]
    cost = [tuple(c * f for c in point_cost(points[k], run.p)) for (k, _), f in zip(order, share)]
    done_cost: list[tuple[float, float]] = []
    done_s: list[float] = []
    failed: set[int] = set()  # points that did not run (oom, unsupported): not visited again
    log.info("sweeping %d points, repeats %s (model load %.1f s, batch probing %.1f s); ETA unknown until a "
             "point is measured", len(points), "in serpentine rounds" if interleaved else "consecutive", load_s,
             run.warmup_s)
    started = time.perf_counter()
    for j, (k, reps) in enumerate(order, 1):
        if k in failed:
            continue
        point = points[k]
        t_point = time.perf_counter()
        point_rows = run.measure_point(point, idle_power_w, reps)
        point_s = time.perf_counter() - t_point
        rows += [{**r, "sweep_index": len(rows) + i, "point_index": k} for i, r in enumerate(point_rows)]
        status = point_rows[0]["status"] if point_rows else "no rows"
        if point_rows and all(r["status"] == "ok" for r in point_rows):  # oom, unsupported: no timing
            done_cost.append(cost[j - 1])
            done_s.append(point_s)
        else:
            failed.add(k)
        left = estimate_remaining_s(done_cost, done_s, cost[j:])
        log.info("%s %d/%d (in=%d out=%d batch=%d%s) %s in %.1f s; %.0f s elapsed, %s",
                 "visit" if interleaved else "point", j, len(order), point.input_len, point.output_len,
                 point.batch_size, f", repeat {reps.start}" if interleaved else "", status, point_s,
                 time.perf_counter() - started,
                 "ETA unknown" if left is None else f"about {left:.0f} s left")
    rows.sort(key=lambda r: (r["point_index"], r["repeat"]))
    for r in rows:
        del r["point_index"]
    return time.perf_counter() - started


def _cell_table(rows: list[dict], provenance: dict, run: CellRun, cell_started: float) -> pd.DataFrame:
    """The cell's rows with its provenance and the time its protocol took."""
    df = pd.DataFrame(rows)
    for key, value in provenance.items():
        df[key] = value
    # A shared prefill window counts once: in the row of the point that measured it.
    own_prefill = df.get("prefill_output_len", 0) == df.get("output_len", 0)
    measured_s = float(np.nansum(df.get("duration_s", 0) * df.get("n_batches_in_window", 0))
                       + np.nansum((df.get("prefill_duration_s", 0) * df.get("n_prefill_batches_in_window", 0))
                                   * own_prefill))
    df["cell_wall_s"] = time.perf_counter() - cell_started
    df["cell_measured_s"] = measured_s
    df["cell_protocol_s"] = run.warmup_s + run.p.idle_s
    df["prompt_source"] = run.prompts.source
    df["prompts_wrapped"] = run.prompts.wrapped
    return df


def _per_gpu(full: _PerBatch, prefill: _PerBatch) -> dict:
    """Each GPU's energy per batch beside the sum, as JSON lists in ``gpu_uuids`` order (one string column
    that Parquet keeps as it is, whatever the number of GPUs); nothing where the meter sums one counter."""
    if not full.device_energy_j:
        return {}
    return {"gpu_energy_j": json.dumps([round(e, 6) for e in full.device_energy_j]),
            "gpu_prefill_energy_j": json.dumps([round(e, 6) for e in prefill.device_energy_j])}


def _check_tokens(tokens: list[int], point: Point) -> None:
    if len(tokens) != point.batch_size or any(t != point.output_len for t in tokens):
        raise RuntimeError(f"point {point}: requests generated {tokens} tokens, expected {point.output_len} "
                           f"for each of {point.batch_size}")
