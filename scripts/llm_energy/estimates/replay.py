"""Replay validation, in two stages so that the estimates can be improved without metering again.

1. :func:`replay_cell` (rule ``replay_cell``, metered, on the cell's hardware; one job per workload in
   the workflow, so that a workload added is replayed alone): serve a seeded sample of the workload
   with its true lengths on the cell's stack, ``runs`` times after a warm-up (more, up to
   ``max_runs``, until the runs hold ``min_metered_s`` of metered windows), each run one metered
   window. It writes only what it metered: ``results/replay/<cell>/<workload>.parquet``, one row per
   run with the sample's requests in serving order (``input_tokens``, ``output_tokens`` lists) and
   the run's energy.
   Around the replay it measures ``control_points`` of the cell's grid points again, with the grid's
   protocol but ``control_repeats`` repeats (``control_*`` columns; with ``repeat_order: serpentine``
   half their repeats before the runs and half after): the meter's level in this job against the grid
   job's, so each workload's comparison carries the drift of its own job.
2. :func:`validate` (rule ``validate_cell``, cheap): the binned estimate and the energy-model estimate
   of the very same requests, from the cell's checked measurements, against the mean of the runs; and
   ``meter_drift_pct``, how much more the control points cost in the replay job than in the grid job
   (with the lowest and highest of their ratios). A CPU's time-based estimate moves from job to job
   and from batch to batch with what else the host runs: these say how far the meter itself repeats
   across the two jobs, the scale below which a model error is not the model's.

The binned estimate rounds every request up to its bin and divides batches fractionally; a real server
pads static batches to their longest request (transformers) or schedules continuously (vLLM); the
energy model serves the requests as the stack does (``llm_energy.modelling.serving``). The errors say how far
each method is from serving the trace.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy.estimates.drift import (
    MIN_PHASE_SHARE,
    cv,
    drift_corrected,
    intervals,
    meter_drift,
    pct_error,
    phase_corrected,
    phase_drift,
    prefill_share,
    reference_corrected,
    reference_level,
    steady_grid,
)
from llm_energy.estimates.estimate import CellNotEstimable, binned_estimate, grid_batch_size
from llm_energy.measurement.cell import CellParams, cell_job
from llm_energy.measurement.loop import FIRST_TEXT_TOKEN, VOCAB_SIZE, CellRun
from llm_energy.measurement.protocol import Point
from llm_energy.measurement.reference import reference_for
from llm_energy.modelling.energy_model import (
    FLAG_SUPPORT_SHARE,
    FLAG_USE_SHARE,
    ModelNotFittable,
    fit_cell,
    measured_points,
)
from llm_energy.modelling.serving import framework_of, serve, static_batches
from llm_energy.pipeline.cells import CELL_KEYS
from llm_energy.pipeline.config import cell_of, job_params
from llm_energy.pipeline.io import write_parquet
from llm_energy.pipeline.roles import GRID, is_grid
from llm_energy.workloads.binning import bin_requests

log = logging.getLogger(__name__)

DEFAULT_RUNS = 2  # metered runs per workload (at least 2): their spread (replay_cv) is the replay's own noise
WARMUP_TOKENS = 8  # output tokens per request of the unmetered warm-up batch


def sample_requests(profile: pd.DataFrame, n: int, seed: int, max_input: int, max_output: int) -> pd.DataFrame:
    """A seeded sample (in trace order) of the requests the binning includes (within the top edges)."""
    inside = profile[(profile["input_tokens"] <= max_input) & (profile["output_tokens"] <= max_output)
                     & (profile["input_tokens"] > 0)]
    n = min(n, len(inside))
    picked = np.sort(np.random.default_rng(seed).choice(len(inside), size=n, replace=False))
    return inside.iloc[picked].reset_index(drop=True)


def prompts_for(sample: pd.DataFrame, seed: int) -> list[list[int]]:
    rng = np.random.default_rng([seed, 7])
    return [rng.integers(FIRST_TEXT_TOKEN, VOCAB_SIZE, size=int(i)).tolist() for i in sample["input_tokens"]]


def replay(backend, meter, sample: pd.DataFrame, batch_size: int, seed: int, runs: int = 1,
           warmup: bool = True, reference=None, min_metered_s: float = 0.0, max_runs: int | None = None) -> list[dict]:
    """Serve the sample ``runs`` times (after one warm-up batch), each run inside its own metered window;
    then again, up to ``max_runs`` runs in all, until the runs' windows add up to ``min_metered_s``: a
    sample served in half a second is as short as one grid window, and its mean needs more windows
    to be read as well as a long sample's (the meter's noise per window does not shrink with it).

    ``reference`` (a :class:`~llm_energy.measurement.reference.ReferenceKernel`): measured right before
    and right after each run, outside its window; the run's ``reference_energy_j`` is their mean, the
    meter's level while it ran (NaN without one)."""
    prompts = prompts_for(sample, seed)
    outs = sample["output_tokens"].astype(int).tolist()
    if warmup:  # the first batch's prompts (their shapes), a few tokens each: the decode steps are alike
        t0 = time.perf_counter()
        backend.serve(prompts[:batch_size], [min(o, WARMUP_TOKENS) for o in outs[:batch_size]], batch_size)
        log.info("replay: warm-up of %d requests in %.1f s; serving %d requests (%d output tokens) at batch %d, "
                 "%d run(s)%s", min(batch_size, len(prompts)), time.perf_counter() - t0, len(prompts), sum(outs),
                 batch_size, runs, f" or more, until {min_metered_s:g} s are metered" if min_metered_s else "")
    rows = []
    level = reference.measure if reference is not None else lambda: math.nan
    after = level()
    metered_s, last = 0.0, max(runs, max_runs or runs)
    while len(rows) < runs or (metered_s < min_metered_s and len(rows) < last):
        run, before = len(rows), after
        with meter.window() as w:
            tokens = backend.serve(prompts, outs, batch_size)
        after = level()
        log.info("replay run %d: served %d requests, %d tokens in %.1f s, %.1f J (%s)", run, len(prompts),
                 sum(tokens), w.duration_s, w.energy_j, w.energy_source)
        short = [(t, o) for t, o in zip(tokens, outs) if t < o]
        if short:
            raise RuntimeError(f"replay: {len(short)} request(s) generated fewer tokens than their true length")
        rows.append({"run": run, "n_requests": len(sample), "replay_energy_j": w.energy_j,
                     "replay_duration_s": w.duration_s, "replay_tokens_generated": int(sum(tokens)),
                     "replay_tokens_requested": int(sum(outs)), "energy_source": w.energy_source,
                     "batch_size": batch_size, "reference_energy_j": (before + after) / 2})
        metered_s += w.duration_s
    if len(rows) > runs:
        log.info("replay: %d runs, %.1f s metered (at least %g s)", len(rows), metered_s, min_metered_s)
    return rows


def replay_rows(workload: str, sample: pd.DataFrame, runs: list[dict], labels: dict, seed: int) -> list[dict]:
    """The replay file's rows of one workload: each run with the sample's requests beside it."""
    inputs = sample["input_tokens"].astype("int64").tolist()
    outputs = sample["output_tokens"].astype("int64").tolist()
    return [{"workload": workload, **labels, **r, "sample_seed": seed, "input_tokens": inputs,
             "output_tokens": outputs} for r in runs]


def control_points(measurements: pd.DataFrame, k: int, batch_size: int, sample: pd.DataFrame | None = None,
                   framework: str = "vllm") -> list[tuple[int, int]]:
    """``k`` of the cell's measured grid shapes (input, output) at ``batch_size``, for the replay job to
    measure again.

    With the workload's ``sample``: the shapes that carry most of its replay's energy (:func:`replay_shapes`),
    so that the drift they measure is the drift of the work the replay does (a long-context decode and a
    short prefill do not drift alike on a shared CPU: on two default runs a decode-heavy replay ran 28 %
    slower in one job while short control points moved 3 %). Without one: shapes spread over the grid's
    energies (at the quantiles 1/(k+1) ... k/(k+1))."""
    shapes = _grid_shapes(measurements, k, batch_size)
    if shapes.empty:
        return []
    if sample is not None and len(sample):
        carried = replay_shapes(shapes, sample, batch_size, framework)
        return [(int(i), int(o)) for i, o in carried.index[:k]]
    n = len(shapes)
    shapes = shapes.sort_values()
    picks = sorted({min(n - 1, max(0, round((j + 1) * n / (k + 1)) - 1)) for j in range(k)})
    return [(int(i), int(o)) for i, o in shapes.index[picks]]


def _grid_shapes(measurements: pd.DataFrame, k: int, batch_size: int) -> pd.Series:
    """Mean energy per batch of each ok grid shape (input, output) at ``batch_size``; empty when none (or k <= 0)."""
    m = measurements
    if k <= 0 or m.empty or "role" not in m:
        return pd.Series(dtype=float)
    grid = m[is_grid(m["role"]) & (m["batch_size"] == batch_size) & (m["status"] == "ok")]
    return grid.groupby(["input_len", "output_len"])["energy_j"].mean()


def replay_shapes(shapes: pd.Series, sample: pd.DataFrame, batch_size: int, framework: str) -> pd.Series:
    """The energy of the replay that each grid shape stands for, largest first (then those that stand
    for none, nearest to a batch first): each batch the stack
    serves (transformers: the longest prompt and output of each static batch of ``batch_size``; vLLM:
    each request, a ``batch_size``-th of a batch) goes to the nearest shape in log2 (input, output) and
    adds that shape's measured energy per batch. The grid's own energies weigh them, so no model is needed."""
    inputs = np.maximum(sample["input_tokens"].to_numpy(dtype=np.int64), 1)
    outputs = np.maximum(sample["output_tokens"].to_numpy(dtype=np.int64), 1)
    if framework == "transformers":
        inputs, outputs, sizes, _ = static_batches(inputs, outputs, batch_size)
        weight = sizes / batch_size
    else:
        weight = np.full(len(inputs), 1.0 / batch_size)
    grid_in = np.log2(shapes.index.get_level_values(0).to_numpy(dtype=float))
    grid_out = np.log2(shapes.index.get_level_values(1).to_numpy(dtype=float))
    dist = np.hypot(np.log2(inputs)[:, None] - grid_in[None, :], np.log2(outputs)[:, None] - grid_out[None, :])
    nearest = np.argmin(dist, axis=1)
    carried = np.bincount(nearest, weights=weight * shapes.to_numpy()[nearest], minlength=len(shapes))
    # Shapes that carry nothing follow, nearest to some batch first (a sample of one shape still gets k).
    order = np.lexsort((dist.min(axis=0), -carried))
    return pd.Series(carried[order], index=shapes.index[order])


class Controls:
    """The control points of one replay job, measured with the grid's protocol (warm-up, repeats, a full
    and a prefill window per repeat: the meter's drift of each phase apart, since a CPU's prefill and
    decode do not drift alike between jobs; see :func:`~llm_energy.estimates.drift.phase_drift`).

    :meth:`before` measures them ahead of the replay runs, :meth:`after` behind them: with
    ``repeat_order: serpentine`` each point's repeats are split around the runs (ABBA: the first half
    before, the rest after, so a linear drift of the meter's level over the job cancels between the
    points and the runs); otherwise all of them before (:meth:`after` measures nothing)."""

    def __init__(self, backend, protocol, meter, shapes: list[tuple[int, int]], batch_size: int,
                 prefill_windows: bool = True, repeats: int | None = None):
        """``prefill_windows=False``: full windows only (``control_prefill_energy_j`` NaN), where the
        points' prefill is too small a share of their energy to be read (:func:`prefill_share`).
        ``repeats``: each point's repeats in this job (default: the grid's)."""
        self.run = CellRun(backend, protocol, meter, prefill_windows=prefill_windows)
        self.shapes, self.batch_size = shapes, batch_size
        n = int(repeats or protocol.repeats)
        split = (n + 1) // 2 if protocol.interleaved(backend.variant.compiled) and n > 1 else n
        self.repeats = (range(0, split), range(split, n))
        self.energies: list[list[list[float]]] = []  # per visit (before, after): per point, its ok repeats
        self.prefills: list[list[list[float]]] = []  # the same, the prefill windows

    def _measure(self, repeats: range, when: str) -> None:
        if not len(repeats):
            return
        visit, prefill = [], []
        for i, o in self.shapes:
            rows = [r for r in self.run.measure_point(Point(i, o, self.batch_size, GRID), math.nan, repeats)
                    if r["status"] == "ok"]
            visit.append([r["energy_j"] for r in rows])
            prefill.append([r["prefill_energy_j"] for r in rows])
            log.info("control point in=%d out=%d batch=%d %s the replay: %s J per batch", i, o, self.batch_size,
                     when, ", ".join(f"{e:.3g}" for e in visit[-1]) or "no ok repeat")
        self.energies.append(visit)
        self.prefills.append(prefill)

    def before(self) -> None:
        self._measure(self.repeats[0], "before")

    def after(self) -> None:
        self._measure(self.repeats[1], "after")

    def columns(self) -> dict:
        """List columns of the replay file: ``control_energy_j`` and ``control_prefill_energy_j``, each
        point's mean over its ok repeats (before and after the runs) of its full and prefill windows;
        with a bracket, ``control_start_energy_j`` and ``control_end_energy_j``, the full windows' means
        of each side."""
        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else math.nan

        def pooled(visits: list[list[list[float]]]) -> list[float]:
            return [mean(sum((v[j] for v in visits), [])) for j in range(len(self.shapes))]

        cols = {"control_input_len": [i for i, _ in self.shapes], "control_output_len": [o for _, o in self.shapes],
                "control_batch_size": self.batch_size, "control_energy_j": pooled(self.energies),
                "control_prefill_energy_j": pooled(self.prefills)}
        if len(self.energies) == 2:
            cols["control_start_energy_j"] = [mean(v) for v in self.energies[0]]
            cols["control_end_energy_j"] = [mean(v) for v in self.energies[1]]
        return cols


def measure_controls(backend, protocol, meter, shapes: list[tuple[int, int]], batch_size: int) -> dict:
    """All of the control points' repeats at once, without a replay between them (the columns of
    :meth:`Controls.columns`)."""
    controls = Controls(backend, protocol, meter, shapes, batch_size)
    controls.before()
    controls.after()
    return controls.columns()


def replay_cell(cfg: dict, *, hardware: str, model: str, variant: str, decoding: str, model_dir: str | Path,
                profiles: dict[str, str | Path], measurements: str | Path, out: str | Path | None = None,
                draft_dir: str | Path | None = None, runs: int | None = None,
                params: dict | None = None) -> pd.DataFrame:
    """Meter ``runs`` replays of a seeded sample of every workload with this cell's stack (the metered
    stage only: no estimate is made here); write ``out`` (results/replay/...) when given.

    ``params``: what the job reads (the rule's params, :func:`llm_energy.pipeline.config.job_params`; default:
    from ``cfg``, which gives the model only)."""

    cell = cell_of(cfg, hardware, model, variant, decoding)
    p = params or job_params(cfg, cell, "replay")
    r, (top_in, top_out) = p["replay"], p["top_edges"]
    runs = max(int(runs or r.get("runs", DEFAULT_RUNS)), 2)  # at least two: their spread is replay_cv
    grid = pd.read_parquet(measurements)
    batch_size = grid_batch_size(grid)
    framework = framework_of(variant)
    job = cell_job(cfg, cell, CellParams((), p["measurement"], p["decoding"], p["online"]), model_dir=model_dir,
                   longest=top_in + top_out, batch_size=batch_size, draft_dir=draft_dir)
    labels = dict(zip(CELL_KEYS, (hardware, model, variant, decoding)))
    rows = []
    with job:
        backend, protocol, meter = job.backend, job.protocol, job.meter
        reference = reference_for(meter)
        for workload, path in profiles.items():
            sample = sample_requests(pd.read_parquet(path), r["n_requests"], r["seed"], top_in, top_out)
            # The grid shapes that carry most of this sample's energy, measured right before its replay.
            shapes = control_points(grid, int(r.get("control_points", 0)), batch_size, sample, framework)
            share = prefill_share(grid, shapes, batch_size)
            controls = Controls(backend, protocol, meter, shapes, batch_size, prefill_windows=share >= MIN_PHASE_SHARE,
                                repeats=r.get("control_repeats"))
            controls.before()
            metered = replay(backend, meter, sample, batch_size, r["seed"], runs=runs, reference=reference,
                             min_metered_s=float(r.get("min_metered_s", 0.0)), max_runs=r.get("max_runs"))
            controls.after()
            rows += [{**row, **controls.columns()}
                     for row in replay_rows(workload, sample, metered, labels, r["seed"])]
            energies = [m["replay_energy_j"] for m in metered]
            log.info("%s: %d replay run(s), mean %.1f J, cv %.3f", workload, len(metered), np.mean(energies),
                     cv(energies))
    df = pd.DataFrame(rows)
    if out is not None:
        write_parquet(df, out)
    return df


def compare(sample: pd.DataFrame, measurements: pd.DataFrame, input_edges, output_edges) -> dict:
    """The binned estimate of the same sample, from the cell's grid measurements."""
    bins, summary = bin_requests(sample, input_edges, output_edges)
    per_bin = binned_estimate(bins, measurements)
    return {"estimate_energy_j": float(per_bin["energy_j"].sum()),
            "estimate_whole_batches_energy_j": float(per_bin["energy_whole_batches_j"].sum()),
            "n_bins": len(per_bin), "n_excluded": summary["n_excluded"]}


def model_compare(sample: pd.DataFrame, model, framework: str, decoding: str, batch_size: int,
                  context_len: int | None) -> dict:
    """The energy model's estimate of the same sample, served as the stack serves it."""
    s = serve(model, sample["input_tokens"], sample["output_tokens"], batch_size, framework, decoding, context_len)
    return {"model_estimate_energy_j": s.energy_j, "model_prefill_energy_j": s.prefill_energy_j,
            "model_decode_energy_j": s.decode_energy_j, "model_n_extrapolated": s.n_extrapolated,
            "model_n_excluded": s.n_excluded}


def fitted_model(measurements: pd.DataFrame, name: str):
    """The cell's energy model, or (None, the one-line reason) when it has too few points."""
    try:
        return fit_cell(measurements, name=name), ""
    except ModelNotFittable as error:
        log.warning("%s", error)
        return None, str(error)


def _runs_summary(runs: pd.DataFrame) -> dict:
    """One workload's metered runs: their mean (what the estimates are compared with) and spread."""
    first = runs.iloc[0]
    e = runs["replay_energy_j"].to_numpy(dtype=float)
    return {"n_requests": int(first["n_requests"]), "n_replay_runs": len(runs), "replay_energy_j": float(e.mean()),
            "replay_energy_std_j": float(e.std(ddof=1)) if len(e) > 1 else 0.0, "replay_cv": cv(e),
            "replay_duration_s": float(runs["replay_duration_s"].mean()),
            "replay_tokens_requested": int(first["replay_tokens_requested"]),
            "replay_tokens_generated": int(runs["replay_tokens_generated"].min()),
            "batch_size": int(first["batch_size"]), "energy_source": str(first["energy_source"])}


def validate(replays: pd.DataFrame, measurements: pd.DataFrame, input_edges, output_edges,
             context_len: int | None = None, name: str = "the cell") -> pd.DataFrame:
    """One row per workload: the metered replay (mean of its runs) against the binned estimate
    (``estimate_energy_j``, ``error_pct``) and the energy model's (``model_estimate_energy_j``,
    ``model_error_pct``) of the same requests."""
    model, note = fitted_model(measurements, name)
    points = measured_points(measurements)
    steady, steady_note = steady_grid(measurements)
    steady_model = None
    if steady is not None:
        steady_model, steady_note = fitted_model(steady, f"{name} (steady grid)")
    rows = []
    for workload, runs in replays.groupby("workload", sort=False):
        drift = meter_drift(runs, measurements)  # each workload's own replay job and control points
        first = runs.iloc[0]
        labels = {k: first[k] for k in CELL_KEYS}
        sample = pd.DataFrame({"input_tokens": np.asarray(first["input_tokens"], dtype=np.int64),
                               "output_tokens": np.asarray(first["output_tokens"], dtype=np.int64)})
        row = {"workload": workload, **labels, **_runs_summary(runs)}
        try:
            row.update(compare(sample, measurements, input_edges, output_edges), estimate_note="")
        except CellNotEstimable as error:
            log.warning("%s, %s: no binned estimate: %s", name, workload, error)
            row.update(estimate_energy_j=math.nan, estimate_whole_batches_energy_j=math.nan, n_bins=0,
                       n_excluded=0, estimate_note=str(error))
        row["error_pct"] = pct_error(row["estimate_energy_j"], row["replay_energy_j"])
        row["whole_batches_error_pct"] = pct_error(row["estimate_whole_batches_energy_j"], row["replay_energy_j"])
        row.update(_model_columns(model, note, sample, labels, row["batch_size"], context_len, points))
        if row["model_n_extrapolated"]:
            log.info("%s, %s: %d of %d replayed requests lie beyond the measured lengths (input %d, output %d "
                     "tokens): the model extrapolates them", name, workload, row["model_n_extrapolated"],
                     len(sample), model.max_input, model.max_output)
        if row["model_flag"]:
            log.warning("%s, %s: the energy model extrapolates: %s", name, workload, row["model_flag"])
        row["model_error_pct"] = pct_error(row["model_estimate_energy_j"], row["replay_energy_j"])
        row.update(drift)
        row.update(intervals(row))
        row.update(drift_corrected(row))
        row.update(phase_drift(runs, measurements, drift["meter_drift_pct"]))
        row.update(phase_corrected(row))
        row.update(reference_corrected(row, reference_level(runs, measurements)))
        row.update(steady_corrected(row, runs, steady, steady_model, steady_note, sample, labels, context_len))
        log.info("%s, %s: replay %.1f J (cv %.3f); binned %+.1f %%, model %+.1f %% (control points %+.1f %% "
                 "from the grid job's, %+.1f … %+.1f %%)", name, workload, row["replay_energy_j"], row["replay_cv"],
                 row["error_pct"], row["model_error_pct"], drift["meter_drift_pct"], drift["control_ratio_min_pct"],
                 drift["control_ratio_max_pct"])
        rows.append(row)
    return pd.DataFrame(rows)


def steady_corrected(row: dict, runs: pd.DataFrame, steady: pd.DataFrame | None, model, note: str,
                     sample: pd.DataFrame, labels: dict, context_len: int | None) -> dict:
    """The model fitted to the grid job at a steady meter level (:func:`~llm_energy.estimates.drift.steady_grid`),
    its estimate of the sample with each phase moved by the control points' drift against that steady
    grid (:func:`~llm_energy.estimates.drift.phase_drift`), and its error against the metered replay:
    ``model_estimate_steady_j``, ``model_error_steady_pct``, ``meter_drift_steady_pct`` (the control
    points' level drift against the steady grid), ``steady_note`` (why they are NaN). Both of the
    meter's changes are taken out: within the grid job (the reference kernel read at every visit) and
    between the grid and the replay job (the control points). Beside the raw error, never instead."""
    none = {"model_estimate_steady_j": math.nan, "model_error_steady_pct": math.nan,
            "meter_drift_steady_pct": math.nan, "steady_note": note}
    if steady is None or model is None:
        return none
    est = model_compare(sample, model, framework_of(labels["variant"]), labels["decoding"], row["batch_size"],
                        context_len)
    level = meter_drift(runs, steady)["meter_drift_pct"]
    if math.isnan(level):
        return {**none, "steady_note": "no control points: the drift between the jobs is not measured"}
    moved = phase_corrected({**est, **phase_drift(runs, steady, level), "replay_energy_j": row["replay_energy_j"]})
    return {"model_estimate_steady_j": moved["model_estimate_phase_j"],
            "model_error_steady_pct": moved["model_error_phase_pct"], "meter_drift_steady_pct": level,
            "steady_note": ""}


def term_shares(sample: pd.DataFrame, model, framework: str, decoding: str, batch_size: int,
                context_len: int | None) -> dict[str, float]:
    """Each term's share of the model's estimate of the sample (the model is linear in its coefficients,
    so the sample served by the model of one term alone is that term's part)."""
    parts = {t: serve(model.only(t), sample["input_tokens"], sample["output_tokens"], batch_size, framework,
                      decoding, context_len).energy_j for t in model.terms}
    total = sum(parts.values())
    return {t: (e / total if total > 0 else math.nan) for t, e in parts.items()}


def fit_flags(shares: dict[str, float], support: dict[str, float]) -> str:
    """The terms that supply most of an estimate while no measured point shows them (one clause each)."""
    return "; ".join(
        f"{t} supplies {100 * s:.0f} % of this estimate, and no measured point shows it above "
        f"{100 * support.get(t, 0.0):.0f} % of its energy" for t, s in shares.items()
        if s > FLAG_USE_SHARE and support.get(t, 0.0) < FLAG_SUPPORT_SHARE)


MODEL_DIAGNOSTICS = {"model_form": "", "model_form_note": "", "loo_grid_pct": math.nan, "loo_sweep_pct": math.nan,
                     "loo_padded_pct": math.nan, "model_term_shares": "{}", "model_flag": ""}


def _model_columns(model, note: str, sample: pd.DataFrame, labels: dict, batch_size: int,
                   context_len: int | None, points: pd.DataFrame | None = None) -> dict:
    if model is None:
        return {"model_estimate_energy_j": math.nan, "model_prefill_energy_j": math.nan,
                "model_decode_energy_j": math.nan, "model_n_extrapolated": 0, "model_n_excluded": 0,
                "loo_median_error_pct": math.nan, "loo_max_error_pct": math.nan, "model_note": note,
                **MODEL_DIAGNOSTICS}
    framework = framework_of(labels["variant"])
    out = model_compare(sample, model, framework, labels["decoding"], batch_size, context_len)
    shares = term_shares(sample, model, framework, labels["decoding"], batch_size, context_len)
    support = model.support_shares(points) if points is not None else {}
    by_role = model.loo_by_role()
    return {**out, "loo_median_error_pct": model.loo_median_error_pct, "loo_max_error_pct": model.loo_max_error_pct,
            "model_note": "", "model_form": ",".join(model.terms), "model_form_note": model.form_note,
            **{f"loo_{k}_pct": by_role.get(k, math.nan) for k in ("grid", "sweep", "padded")},
            "model_term_shares": json.dumps({t: round(s, 4) for t, s in shares.items()}),
            "model_flag": fit_flags(shares, support)}
