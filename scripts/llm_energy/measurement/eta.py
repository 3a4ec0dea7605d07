"""How long a cell still has to run: each point's cost in prefill and decode tokens, and the remaining
time from the points measured so far (the ETA line of a measurement job's log)."""

from __future__ import annotations

import functools

import numpy as np

from llm_energy.measurement.protocol import Point, Protocol


def point_cost(point: Point, protocol: Protocol) -> tuple[float, float]:
    """What measuring a point costs, roughly, for the ETA: (decode steps, tokens) of the full-length
    batches it runs (warm-up and every repeat's window; the prefill runs are about proportional)."""
    warm_len = point.output_len if protocol.warmup_output_tokens is None \
        else min(point.output_len, protocol.warmup_output_tokens)
    batches = protocol.repeats * protocol.batches_per_window(point.batch_size)
    steps = batches * point.output_len + protocol.warmup_batches * warm_len
    tokens = point.batch_size * (batches * (point.input_len + point.output_len)
                                 + protocol.warmup_batches * (point.input_len + warm_len))
    return float(steps), float(tokens)


# The most the estimated total time of a cell (elapsed + remaining) moves from one point to the next.
MAX_STEP = 1.5


def estimate_remaining_s(done_cost: list[tuple[float, float]], done_s: list[float],
                         todo_cost: list[tuple[float, float]]) -> float | None:
    """Seconds the points of ``todo_cost`` will take, from the points measured so far (None before any),
    steadied: the estimated total (elapsed + remaining) moves by at most ``MAX_STEP`` times from one
    point to the next. The first points are the cell's smallest, and few short noisy times extrapolated
    to its largest points made the estimate jump (a CPU cell's 26 points: 52, 51, 272, 35 s left). Each
    earlier estimate is recomputed from the same lists (cached), so the function keeps no state.
    """
    if not done_s:
        return None
    if not todo_cost:
        return 0.0
    cost = [tuple(map(float, c)) for c in [*done_cost, *todo_cost]]
    times = tuple(float(t) for t in done_s)
    total = None
    for j in range(1, len(times) + 1):
        elapsed = sum(times[:j])
        raw = elapsed + _fit_cached(tuple(cost[:j]), times[:j], tuple(cost[j:]))
        total = raw if total is None else min(max(raw, total / MAX_STEP), total * MAX_STEP)
        total = max(total, elapsed)
    return total - sum(times)


@functools.lru_cache(maxsize=4096)
def _fit_cached(done_cost: tuple, done_s: tuple, todo_cost: tuple) -> float:
    return fit_remaining_s(list(done_cost), list(done_s), list(todo_cost))


def fit_remaining_s(done_cost: list[tuple[float, float]], done_s: list[float],
                    todo_cost: list[tuple[float, float]]) -> float:
    """The remaining seconds a fit of the measured points predicts (unsteadied; at least one point).

    A point's time is fitted as ``a + b * steps + c * tokens`` (see :func:`point_cost`): a fixed part
    (windows last at least ``min_window_s``, per-call overheads), a per-decode-step part (weights
    read once per step, launch overheads) and a per-token part (compute), by least squares with
    ``a, b, c >= 0`` over the measured points; model load and probing are not in ``done_s``. With one
    point measured, its whole time counts as fixed. Scaling the elapsed time by a single work ratio
    made a cell's first estimate tens of times too long: points run smallest first, the first one's
    time is nearly all fixed part, and its work is thousands of times below the largest point's.
    (Choosing the columns by leave-one-out error instead was tried: steadier on a CPU cell's noisy
    times, but blind to a per-token part that the small points show only faintly.)
    """
    y = np.asarray(done_s, dtype=float)
    done = np.column_stack([np.ones(len(y)), np.asarray(done_cost, dtype=float).reshape(len(y), 2)])
    todo = np.column_stack([np.ones(len(todo_cost)), np.asarray(todo_cost, dtype=float).reshape(-1, 2)])
    scale = np.maximum(np.abs(np.vstack([done, todo])).max(axis=0), 1e-12)  # comparable columns
    X = done / scale
    distinct = len({tuple(row) for row in X.round(12)})
    coef, best = np.array([y.mean(), 0.0, 0.0]), float(((y - y.mean()) ** 2).sum())
    # Non-negative least squares over 3 columns: the best of the column subsets whose plain fit is
    # non-negative; a subset needs as many distinct points as columns, and wins only by a margin.
    for cols in ([1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]):
        if len(cols) > distinct:
            continue
        c, *_ = np.linalg.lstsq(X[:, cols], y, rcond=None)
        if (c < 0).any():
            continue
        residual = float(((X[:, cols] @ c - y) ** 2).sum())
        if residual < best * (1 - 1e-9) - 1e-12:
            coef, best = np.zeros(3), residual
            coef[cols] = c
    return float(((todo / scale) @ coef).sum())
