"""Whole-workload energy from binned requests and measured batch energies (the paper's Section 4).

    E_hat = sum over bins N(I*, O*) / B * E_batch(I*, O*, B)

with B the batch size of the bin's grid point (the largest that fit, when probing is on) and
E_batch the mean over repeats of the energy of one batch of B requests of shape (I*, O*). The paper
divides fractionally (``energy_j``); the number of whole batches a server would run, ceil(N / B),
gives ``energy_whole_batches_j``.
Figures and tables use the fractional form, as the paper does.

Beside it (``method = model``): every request at its true length, in trace order, served as the stack
serves it (static padded batches for transformers, continuous batching for vLLM) and priced by the
cell's energy model fitted to all its measured points (``llm_energy.modelling.energy_model``,
``llm_energy.modelling.serving``). Both methods have the same columns; ``systematic_error_pct`` is the largest
|error| the method showed against the metered replays of the cell (NaN, with
``systematic_error_note``, where the cell has none).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from llm_energy import UserError
from llm_energy.estimates.specs import spec_for
from llm_energy.measurement.validation import unusable
from llm_energy.modelling.energy_model import ModelNotFittable, fit_cell
from llm_energy.modelling.serving import framework_of, serve
from llm_energy.models.flops import generation_flops
from llm_energy.pipeline.cells import CELL_KEYS
from llm_energy.pipeline.roles import is_grid
from llm_energy.workloads.binning import within_edges

LEFT_OUT_COLUMNS = ["workload", *CELL_KEYS, "file", "reason"]
METHODS = ("binned", "model")  # the paper's binned estimate; the energy model served at true lengths
NO_REPLAY = "no replay validation of this cell"
# Why a cell has none, the one reason that applies (:func:`no_replay_note`).
NO_REPLAY_MERGED = ("{NO_REPLAY}: it was measured on another machine ({hardware}) and copied in; replays run only "
                    "on the machine that measures the cell")
NO_REPLAY_OFF = "{NO_REPLAY}: replay.enabled is false"
NO_REPLAY_NO_GRID = "{NO_REPLAY}: it measures no bin grid, and only grid cells are replayed"
NO_ESTIMATE_OF_REPLAYS = ("the cell was replayed, but this method estimated none of the samples (results/validation/ "
                          "says why: estimate_note, model_note)")

log = logging.getLogger(__name__)


def grid_rows(measurements: pd.DataFrame) -> pd.DataFrame:
    """The valid rows of the bin grid (role contains ``grid``, status ``ok``)."""
    m = measurements
    if "role" in m:
        m = m[is_grid(m["role"])]
    if "status" in m:
        m = m[m["status"] == "ok"]
    if "valid" in m:
        m = m[m["valid"]]
    return m


def batch_energy(measurements: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over repeats of each grid point (input_len, output_len) and its batch size B."""
    m = grid_rows(measurements)
    g = m.groupby(["input_len", "output_len"])
    out = g.agg(batch_size=("batch_size", "max"), n_batch_sizes=("batch_size", "nunique"),
                energy_batch_j=("energy_j", "mean"), energy_batch_std_j=("energy_j", "std"),
                duration_batch_s=("duration_s", "mean"), n_repeats=("repeat", "count")).reset_index()
    if (out["n_batch_sizes"] > 1).any():
        raise ValueError("a grid point was measured at more than one batch size")
    out["energy_batch_std_j"] = out["energy_batch_std_j"].fillna(0.0)
    return out.drop(columns="n_batch_sizes")


class CellNotEstimable(UserError):
    """Some bins of a workload have no valid grid measurement in a cell.

    ``absent``: bin points the cell's table has no grid row for (it was measured with other bins);
    ``failed``: points it measured but cannot use (out of memory, unsupported, or every repeat invalid).
    """

    def __init__(self, message: str, absent: list[tuple[int, int]], failed: list[tuple[int, int]]):
        super().__init__(message)
        self.absent, self.failed = absent, failed


def _points(pts: list[tuple[int, int]], most: int = 4) -> str:
    shown = ", ".join(f"(in={i}, out={o})" for i, o in pts[:most])
    return shown + (f" and {len(pts) - most} more" if len(pts) > most else "")


def _grid_any_status(measurements: pd.DataFrame) -> pd.DataFrame:
    m = measurements
    if "role" in m:
        m = m[is_grid(m["role"])]
    return m


def not_estimable(measurements: pd.DataFrame, missing: list[tuple[int, int]]) -> CellNotEstimable:
    """The error for bins without a valid grid measurement, saying for each kind what to do."""
    grid = _grid_any_status(measurements)
    present = set(zip(grid["input_len"].astype(int), grid["output_len"].astype(int)))
    absent = [p for p in missing if p not in present]
    failed = [p for p in missing if p in present]
    parts = []
    if failed:
        at = grid[[p in set(failed) for p in zip(grid["input_len"].astype(int), grid["output_len"].astype(int))]]
        reasons = at["invalid_reason"].fillna("") if "invalid_reason" in at else pd.Series("", index=at.index)
        reasons = reasons[reasons != ""]
        if not reasons.empty:
            why = f"invalid rows say: {reasons.iloc[0]}"
        else:
            statuses = at["status"].astype(str).value_counts() if "status" in at else pd.Series(dtype=int)
            why = "status " + ", ".join(f"{s} ({n} rows)" for s, n in statuses.items()) if len(statuses) else "no rows"
        parts.append(f"no valid grid measurement for bin(s) {_points(failed)} (out of memory, unsupported, or every "
                     f"repeat failed validation; {why}): measure the cell again")
    if absent:
        parts.append(f"no grid measurement at all for bin(s) {_points(absent)}: the cell was measured with other "
                     "bins; measure it again with the current bins")
    return CellNotEstimable("; ".join(parts), absent, failed)


def missing_bins(bins: pd.DataFrame, measurements: pd.DataFrame) -> list[tuple[int, int]]:
    """The (input, output) bin points that have no valid grid measurement in this cell."""
    have = set(zip(*[grid_rows(measurements)[c].astype(int) for c in ("input_len", "output_len")]))
    return [(int(i), int(o)) for i, o in zip(bins["input_bin"], bins["output_bin"]) if (int(i), int(o)) not in have]


def binned_estimate(bins: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """Per-bin contributions to the workload's energy; raises :class:`CellNotEstimable` when a needed
    point has no valid measurement."""
    missing = missing_bins(bins, measurements)
    if missing:
        raise not_estimable(measurements, missing)
    per_point = batch_energy(measurements)
    merged = bins.merge(per_point, how="left", left_on=["input_bin", "output_bin"],
                        right_on=["input_len", "output_len"])
    if merged["energy_batch_j"].isna().any():  # measured, but no energy recorded
        nan = merged[merged["energy_batch_j"].isna()]
        raise not_estimable(measurements, [(int(i), int(o)) for i, o in zip(nan["input_bin"], nan["output_bin"])])
    merged = merged.drop(columns=["input_len", "output_len"])
    merged["batch_size"] = merged["batch_size"].astype("int64")
    merged["n_batches"] = merged["n_requests"] / merged["batch_size"]
    merged["n_whole_batches"] = np.ceil(merged["n_requests"] / merged["batch_size"]).astype("int64")
    merged["energy_j"] = merged["n_batches"] * merged["energy_batch_j"]
    merged["energy_whole_batches_j"] = merged["n_whole_batches"] * merged["energy_batch_j"]
    return merged


def invalid_grid_points(measurements: pd.DataFrame) -> int:
    """Grid points whose rows (status ok) failed validation."""
    if "valid" not in measurements:
        return 0
    bad = grid_rows(measurements.assign(valid=True))
    bad = bad[~measurements.loc[bad.index, "valid"]]
    return int(bad[["input_len", "output_len", "batch_size"]].drop_duplicates().shape[0])


def workload_estimate(bins: pd.DataFrame, summary: dict, measurements: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """One summary row (workload totals) and the per-bin table for one workload and one cell."""
    per_bin = binned_estimate(bins, measurements)
    sources = sorted(grid_rows(measurements)["energy_source"].dropna().unique())
    total = float(per_bin["energy_j"].sum())
    row = {
        "n_invalid_points": invalid_grid_points(measurements),
        "n_requests": summary["n_requests"], "n_included": summary["n_included"],
        "n_excluded": summary["n_excluded"], "n_bins": int(len(per_bin)),
        "batch_size_min": int(per_bin["batch_size"].min()), "batch_size_max": int(per_bin["batch_size"].max()),
        "energy_j": total, "energy_whole_batches_j": float(per_bin["energy_whole_batches_j"].sum()),
        "energy_per_request_j": total / summary["n_included"] if summary["n_included"] else math.nan,
        "energy_source": "+".join(sources),
    }
    return row, per_bin


def ideal_energy(bins: pd.DataFrame, arch, spec: dict | None) -> dict:
    """The paper's ideal: TDP / peak FLOPS x sum over bins N x FLOPs(I*, O*) of one request.

    Both the dense and the with-sparsity peak are used (the paper's A6000 figure, 309.7 TFLOPS, is
    the with-sparsity one). Without a spec for the hardware the ideal is NaN.
    """
    flops = float(sum(int(b.n_requests) * generation_flops(arch, int(b.input_bin), int(b.output_bin), 1)
                      for b in bins.itertuples()))
    return ideal_of_flops(flops, spec)


def ideal_of_flops(flops: float, spec: dict | None) -> dict:
    """TDP / peak FLOPS x ``flops``, at the dense and the with-sparsity peak (NaN without a spec)."""
    out = {"flops": flops, "tdp_w": math.nan, "peak_dense_tflops": math.nan,
           "ideal_energy_j": math.nan, "ideal_sparse_energy_j": math.nan, "spec_source": ""}
    if spec:
        tdp = float(spec["tdp_w"])
        out.update(tdp_w=tdp, peak_dense_tflops=float(spec["bf16_dense_tflops"]),
                   ideal_energy_j=tdp / (float(spec["bf16_dense_tflops"]) * 1e12) * flops,
                   spec_source=str(spec.get("source", "")))
        sparse = spec.get("bf16_sparse_tflops")
        if sparse is not None and not pd.isna(sparse):
            out["ideal_sparse_energy_j"] = tdp / (float(sparse) * 1e12) * flops
    return out


def add_ideal_columns(row: dict) -> dict:
    """Percent of energy above the ideal (dense and with-sparsity peak)."""
    for col, ideal in (("pct_above_ideal", "ideal_energy_j"), ("pct_above_ideal_sparse", "ideal_sparse_energy_j")):
        row[col] = 100.0 * (row["energy_j"] / row[ideal] - 1.0) if row[ideal] and not math.isnan(row[ideal]) \
            else math.nan
    return row


def request_flops(arch, inputs, outputs) -> float:
    """Sum of :func:`llm_energy.models.flops.generation_flops` over requests at their true lengths (vectorised:
    the same closed form, prefill plus every KV-cached decode step)."""
    i = np.asarray(inputs, dtype=np.float64)
    steps = np.maximum(np.asarray(outputs, dtype=np.float64) - 1.0, 0.0)
    per_token = float(arch.linear_per_token() + arch.lm_head(1))
    score = float(arch.attention_scores(1, 1))  # per query-key pair
    prefill = i * arch.linear_per_token() + score * i * i + arch.lm_head(1)
    decode = steps * per_token + score * (steps * i + steps * (steps + 1.0) / 2.0)
    return float(np.sum(prefill + decode))


def grid_batch_size(measurements: pd.DataFrame) -> int:
    """The batch size the stack serves a workload with (and the replay uses): the largest of its grid
    points that ran (of any point, in a cell without grid)."""
    ok = measurements[measurements["status"] == "ok"] if "status" in measurements else measurements
    grid = ok[ok["role"].astype(str).str.contains("grid")] if "role" in ok else ok
    return int((grid if len(grid) else ok)["batch_size"].max())


def fit_models(cells: list[tuple[str, pd.DataFrame]]) -> dict:
    """Each cell's energy model (or the one-line reason it has none), by its path."""
    fitted = {}
    for path, m in cells:
        try:
            fitted[path] = fit_cell(m, name=str(path))
        except ModelNotFittable as error:
            log.warning("%s", error)
            fitted[path] = str(error)
    return fitted


def model_workload_estimate(profile: pd.DataFrame, measurements: pd.DataFrame, model, context_len: int | None) -> dict:
    """One summary row of the energy model for one workload and one cell (the binned row's columns).

    ``model`` is the cell's :class:`~llm_energy.modelling.energy_model.EnergyModel`, or the reason it has none
    (then the energies are NaN and ``model_note`` says why).
    """
    labels = {k: measurements[k].iloc[0] for k in CELL_KEYS}
    b = grid_batch_size(measurements)
    sources = "+".join(sorted(grid_rows(measurements)["energy_source"].dropna().unique()))
    row = {"n_invalid_points": invalid_grid_points(measurements), "n_requests": len(profile), "n_bins": 0,
           "energy_source": sources}
    if isinstance(model, str):
        return {**row, "n_included": 0, "n_excluded": 0, "batch_size_min": b, "batch_size_max": b,
                "energy_j": math.nan, "energy_whole_batches_j": math.nan, "energy_per_request_j": math.nan,
                "n_extrapolated": 0, "loo_median_error_pct": math.nan, "loo_max_error_pct": math.nan,
                "model_note": model}
    s = serve(model, profile["input_tokens"], profile["output_tokens"], b, framework_of(labels["variant"]),
              labels["decoding"], context_len)
    return {**row, "n_included": s.n_included, "n_excluded": s.n_excluded, "batch_size_min": s.batch_size,
            "batch_size_max": s.batch_size, "energy_j": s.energy_j, "energy_whole_batches_j": s.energy_j,
            "energy_per_request_j": s.energy_j / s.n_included if s.n_included else math.nan,
            "n_extrapolated": s.n_extrapolated, "loo_median_error_pct": model.loo_median_error_pct,
            "loo_max_error_pct": model.loo_max_error_pct, "model_note": ""}


def included_lengths(profile: pd.DataFrame, context_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The lengths the model serves (clipped to 1, within the context), for the ideal's FLOPs."""
    i = np.maximum(profile["input_tokens"].to_numpy(dtype=np.int64), 1)
    o = np.maximum(profile["output_tokens"].to_numpy(dtype=np.int64), 1)
    keep = (i + o <= context_len) if context_len else np.ones(len(i), dtype=bool)
    return i[keep], o[keep]


WHOLE_TRACE = "the whole trace"


def coverage_of(summary: dict | None) -> tuple[str, tuple[list[int], list[int]] | None]:
    """Which requests a workload's estimates cover: those within the bins' top edges (the binned
    method's, so that both methods price the same requests), or the whole trace without edges."""
    if not summary or "input_edges" not in summary:
        return WHOLE_TRACE, None
    i, o = summary["input_edges"], summary["output_edges"]
    return f"requests within the top bin edges (input <= {i[-1]}, output <= {o[-1]})", (i, o)


def model_estimates(profiles: dict[str, pd.DataFrame], cells: list[tuple[str, pd.DataFrame]], archs: dict,
                    specs: pd.DataFrame, contexts: dict | None = None, skip: set | None = None,
                    summaries: dict[str, dict] | None = None) -> pd.DataFrame:
    """Rows of ``method = model`` for every workload and every cell (but those in ``skip``): the model
    served the requests the binned method covers (``summaries``: each workload's bin summary, with its
    edges; without one, the whole trace), and beside it the whole trace (``whole_trace_*``)."""
    contexts, skip, summaries = contexts or {}, skip or set(), summaries or {}
    usable = [(p, m) for p, m in cells if p not in skip]
    fitted = fit_models(usable)
    rows, flops = [], {}
    for workload, profile in profiles.items():
        coverage, edges = coverage_of(summaries.get(workload))
        covered = profile[within_edges(profile, *edges)] if edges else profile
        for path, m in usable:
            labels = {k: m[k].iloc[0] for k in CELL_KEYS}
            ctx = contexts.get(labels["model"])
            spec = spec_for(labels["hardware"], specs)
            row = model_workload_estimate(covered, m, fitted[path], ctx)
            whole = model_workload_estimate(profile, m, fitted[path], ctx) if edges else row
            for part, requests in (("covered", covered), ("whole", profile)):
                if (workload, labels["model"], part) not in flops:
                    flops[(workload, labels["model"], part)] = request_flops(archs[labels["model"]],
                                                                             *included_lengths(requests, ctx))
            row.update(ideal_of_flops(flops[(workload, labels["model"], "covered")], spec))
            whole_ideal = ideal_of_flops(flops[(workload, labels["model"], "whole")], spec)
            row.update(coverage=coverage, whole_trace_energy_j=whole["energy_j"],
                       whole_trace_n_requests=whole["n_requests"], whole_trace_n_included=whole["n_included"],
                       whole_trace_n_extrapolated=whole["n_extrapolated"],
                       whole_trace_ideal_energy_j=whole_ideal["ideal_energy_j"])
            rows.append(add_ideal_columns({"workload": workload, **labels, **row, "method": "model"}))
    return pd.DataFrame(rows)


def systematic_errors(validation: pd.DataFrame | None) -> pd.DataFrame:
    """Per cell and method, the largest |error| against the metered replays (``error_pct`` of the
    binned estimate, ``model_error_pct`` of the model)."""
    cols = [*CELL_KEYS, "method", "systematic_error_pct", "n_replayed"]
    if validation is None or validation.empty:
        return pd.DataFrame(columns=cols)
    parts = []
    for method, col in (("binned", "error_pct"), ("model", "model_error_pct")):
        if col in validation:
            worst = (validation.assign(e=validation[col].abs()).groupby(CELL_KEYS)["e"]
                     .agg(systematic_error_pct="max", n_replayed="count"))
            parts.append(worst.reset_index().assign(method=method))
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def no_replay_note(cell_hardware: str, hardware: str | None, validation: pd.DataFrame | None) -> str:
    """Why a cell has no replay validation: copied in from another machine, replay off (no validation
    at all on this machine), or no grid; without ``hardware`` (the run's) the reasons are not told apart."""
    if hardware is None:
        return NO_REPLAY
    if cell_hardware != hardware:
        return NO_REPLAY_MERGED.format(NO_REPLAY=NO_REPLAY, hardware=cell_hardware)
    return (NO_REPLAY_OFF if validation is None or validation.empty else NO_REPLAY_NO_GRID).format(NO_REPLAY=NO_REPLAY)


def add_method_columns(estimates: pd.DataFrame, validation: pd.DataFrame | None,
                       hardware: str | None = None) -> pd.DataFrame:
    """Give the binned rows the model's columns (and the reverse), and every row its systematic error.

    ``hardware``: the run's (this machine's), so that a cell without replay says which reason applies."""
    est = estimates.copy()
    defaults = {"method": "binned", "n_extrapolated": 0, "loo_median_error_pct": math.nan,
                "loo_max_error_pct": math.nan, "model_note": ""}
    for col, value in defaults.items():
        if col not in est:
            est[col] = value
        est[col] = est[col].fillna(value) if col != "method" else est[col].fillna("binned")
    est["n_extrapolated"] = est["n_extrapolated"].astype("int64")
    sys_err = systematic_errors(validation)
    est = est.merge(sys_err.astype({c: est[c].dtype for c in CELL_KEYS}) if len(sys_err) else sys_err,
                    on=[*CELL_KEYS, "method"], how="left")
    est["systematic_error_pct"] = est["systematic_error_pct"].astype(float)
    replayed = est.pop("n_replayed").astype(float)
    est["systematic_error_note"] = [
        no_replay_note(str(hw), hardware, validation) if math.isnan(n)
        else f"largest of {int(n)} replayed workload(s)" if n else NO_ESTIMATE_OF_REPLAYS
        for n, hw in zip(replayed, est["hardware"])]
    return est


def estimate_cells(workloads: list[tuple[str, pd.DataFrame, dict]], cells: list[tuple[str, pd.DataFrame]],
                   archs: dict, specs: pd.DataFrame, *, profiles: dict[str, pd.DataFrame] | None = None,
                   contexts: dict[str, int | None] | None = None,
                   validation: pd.DataFrame | None = None,
                   hardware: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Estimates of every workload for every checked cell table (path, table), by both methods.

    ``method = binned`` (:func:`binned_cells`) from ``workloads`` (name, bins, bin summary);
    ``method = model`` from ``profiles`` (workload -> per-request lengths; none: no model rows) with
    each model's context length ``contexts`` (``max_position_embeddings``). ``validation``: the
    replay validation tables, for ``systematic_error_pct``; ``hardware``: the run's (:func:`no_replay_note`).
    Returns (estimates, per-bin contributions of the binned method, left-out cells).
    """
    estimates, by_bin, left_out = binned_cells(workloads, cells, archs, specs)
    if profiles:
        skip = {path for path, m in cells if "valid" in m and "status" in m and unusable(m)}
        summaries = {name: summary for name, _, summary in workloads}
        model_rows = model_estimates(profiles, cells, archs, specs, contexts, skip, summaries)
        binned = estimates.assign(method="binned", coverage=[coverage_of(summaries.get(w))[0]
                                                             for w in estimates["workload"]])
        estimates = pd.concat([binned, model_rows], ignore_index=True)
    return add_method_columns(estimates, validation, hardware), by_bin, left_out


def binned_cells(workloads: list[tuple[str, pd.DataFrame, dict]], cells: list[tuple[str, pd.DataFrame]],
                 archs: dict, specs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The paper's binned estimates of every workload (name, bins, bin summary) for every checked cell
    table (path, table).

    A cell that cannot be estimated for a workload (every row invalid, a bin point out of memory or
    measured with other bins) is left out of that workload's estimate, with one warning line naming
    its file and why, and a row in the third table (``LEFT_OUT_COLUMNS``); the other cells are
    estimated. Only bins that no cell measured at all, or no cell left to estimate, stop the run.
    Returns (estimates, per-bin contributions, left-out cells).
    """

    if not cells:
        raise UserError("no measured cell sweeps the bin grid: give at least one cell the points family 'grid'")
    rows, per_bin, left = [], [], []
    whole_cell = {}
    for path, m in cells:
        if "valid" in m and "status" in m:
            why = unusable(m)
            if why:
                whole_cell[path] = why
    for workload, bins, summary in workloads:
        never = None  # bin points that no cell has a grid row for
        for path, m in cells:
            labels = {k: m[k].iloc[0] for k in CELL_KEYS}
            try:
                row, detail = workload_estimate(bins, summary, m)
            except CellNotEstimable as error:
                never = set(error.absent) if never is None else never & set(error.absent)
                left.append({"workload": workload, **labels, "file": str(path),
                             "reason": whole_cell.get(path, str(error))})
                continue
            never = set()
            row.update(ideal_energy(bins, archs[labels["model"]], spec_for(labels["hardware"], specs)))
            rows.append(add_ideal_columns({"workload": workload, **labels, **row}))
            per_bin.append(detail.assign(workload=workload, **labels))
        if never:
            pts = sorted(never)
            raise UserError(f"no cell has a grid measurement for bin(s) {_points(pts)} of workload {workload!r}: "
                            "the measurements were made with other bins; measure the cells again with the current "
                            "bins (results/checked/ lists each cell's points)")
    left_out = pd.DataFrame(left, columns=LEFT_OUT_COLUMNS)
    for (path, reason), group in left_out.groupby(["file", "reason"], sort=False):
        log.warning("%s: left out of the estimates of %s: %s", path, ", ".join(group["workload"]), reason)
    if not rows:
        first = left_out.iloc[0]
        raise UserError(f"no cell could be estimated, every one was left out; first: {first['file']}: "
                        f"{first['reason']}")
    by_bin = pd.concat(per_bin, ignore_index=True)
    return pd.DataFrame(rows), by_bin, left_out


def savings(estimates: pd.DataFrame, comparisons: list[dict], method: str = "binned") -> pd.DataFrame:
    """Energy an optimized stack saves against a baseline, per workload, hardware, model and decoding
    (from the estimates of ``method``; the paper's binned ones by default)."""
    keys = ["workload", "hardware", "model", "decoding"]
    if "method" in estimates:
        estimates = estimates[estimates["method"] == method]
    rows = []
    for comp in comparisons:
        base = estimates[estimates["variant"] == comp["baseline"]].set_index(keys)["energy_j"]
        opt = estimates[estimates["variant"] == comp["optimized"]].set_index(keys)["energy_j"]
        for key in base.index.intersection(opt.index):
            rows.append({**dict(zip(keys, key)), "baseline": comp["baseline"], "optimized": comp["optimized"],
                         "baseline_energy_j": base[key], "optimized_energy_j": opt[key],
                         "saving_pct": 100.0 * (1.0 - opt[key] / base[key])})
    cols = keys + ["baseline", "optimized", "baseline_energy_j", "optimized_energy_j", "saving_pct"]
    return pd.DataFrame(rows, columns=cols)
