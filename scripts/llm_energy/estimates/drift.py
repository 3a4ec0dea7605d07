"""The meter's level in the replay job against the grid job's, and the errors brought to it.

A CPU's time-based estimate moves from job to job with what else the host runs. The replay job measures
some of the grid's points again (control points; with ``repeat_order: serpentine`` half their repeats
before its runs and half after) and reads the reference kernel beside them. From those:
:func:`meter_drift` (how much more the control points cost in the replay job), :func:`intervals` (how
far an estimate may sit from its replay for the noise alone), and two corrections beside the raw
errors: :func:`drift_corrected` (by the control points' level), :func:`phase_corrected` (by their
prefill and decode drift apart, :func:`phase_drift`) and :func:`reference_corrected` (by the
reference kernel); :func:`steady_grid` takes the meter's level changes within the grid job out of its
rows, as the reference kernel read them. The raw errors stay what was metered; docs/method.md says
when to read which.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llm_energy.pipeline.roles import is_grid


def pct_error(estimate: float, measured: float) -> float:
    """100 x (estimate / measured - 1): positive when the estimate is higher."""
    return 100.0 * (estimate / measured - 1.0) if measured and not math.isnan(measured) else math.nan


def cv(values) -> float:
    """Coefficient of variation (sample std / mean); 0 for one value."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / v.mean()) if len(v) > 1 and v.mean() else 0.0


def intervals(row: dict) -> dict:
    """How far an estimate may sit from its replay for the noise alone, in % of the replay (each part a
    one-sigma-like width, combined in quadrature): ``replay_se_pct`` (the standard error of the mean of
    the replay's runs), ``meter_interval_pct`` (the meter's disagreement between the grid job and the
    replay job: the control points' mean drift and half their range; 0 without control points, and
    ``interval_note`` says so), and for the model its own leave-one-out median error. ``interval_pct``
    is the binned estimate's interval, ``model_interval_pct`` the model's."""
    se = 100.0 * row["replay_cv"] / math.sqrt(max(row["n_replay_runs"], 1))
    drift, spread = row.get("meter_drift_pct", math.nan), _control_half_range(row)
    measured = not (math.isnan(drift) or math.isnan(spread))
    meter = math.hypot(drift, spread) if measured else 0.0
    loo = row.get("loo_median_error_pct", math.nan)
    binned = math.hypot(se, meter)
    return {"replay_se_pct": se, "meter_interval_pct": meter, "interval_pct": binned,
            "model_interval_pct": math.hypot(binned, loo) if not math.isnan(loo) else math.nan,
            "interval_note": "" if measured else "no control points: the meter's drift between jobs is not included"}


def _control_half_range(row: dict) -> float:
    """Half the range of the control points' ratios (% of the grid job's); NaN without them."""
    return (row.get("control_ratio_max_pct", math.nan) - row.get("control_ratio_min_pct", math.nan)) / 2


def drift_corrected(row: dict) -> dict:
    """The errors with the replay brought back to the grid job's meter level, beside the raw ones: the
    metered replay divided by (1 + ``meter_drift_pct``/100), the control points' cost in the replay job
    against the grid job's (``replay_energy_corrected_j``, ``error_corrected_pct``,
    ``model_error_corrected_pct``). The correction removes the drift's level, not its uncertainty: the
    corrected intervals (``interval_corrected_pct``, ``model_interval_corrected_pct``) keep the replay's
    standard error, half the control points' range and (the model's) its leave-one-out median. NaN
    without control points. The raw columns stay what was metered; docs/method.md says when to read which."""
    drift = row.get("meter_drift_pct", math.nan)
    none = dict.fromkeys(("replay_energy_corrected_j", "error_corrected_pct", "model_error_corrected_pct",
                          "interval_corrected_pct", "model_interval_corrected_pct"), math.nan)
    if math.isnan(drift):
        return none
    replay = row["replay_energy_j"] / (1.0 + drift / 100.0)
    binned = math.hypot(row["replay_se_pct"], _control_half_range(row))
    loo = row.get("loo_median_error_pct", math.nan)
    return {"replay_energy_corrected_j": replay, "error_corrected_pct": pct_error(row["estimate_energy_j"], replay),
            "model_error_corrected_pct": pct_error(row["model_estimate_energy_j"], replay),
            "interval_corrected_pct": binned,
            "model_interval_corrected_pct": math.hypot(binned, loo) if not math.isnan(loo) else math.nan}


def _median_reference(values) -> float:
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    v = v[v > 0]
    return float(v.median()) if len(v) else math.nan


def reference_level(replays: pd.DataFrame, measurements: pd.DataFrame) -> dict:
    """The reference kernel's energy in the grid job (median over its readings: one before each visit
    of a point) and in the replay job (median over the runs: each the mean of the readings just
    before and after it), and ``reference_drift_pct``, how much more it cost in the replay job; with
    ``reference_grid_cv``, the readings' spread in the grid job. NaN where either file has no readings
    (a GPU meter, or files written before the reference)."""
    m = measurements
    grid = []
    if "reference_energy_j" in m:
        # One reading per visit of a point: a point's repeats share it (consecutive repeats), or each
        # has its own (serpentine rounds).
        grid = m.drop_duplicates(["input_len", "output_len", "batch_size", "role", "reference_energy_j"])[
            "reference_energy_j"].tolist()
    level_grid = _median_reference(grid)
    level_replay = _median_reference(replays.get("reference_energy_j", []))
    g = pd.to_numeric(pd.Series(grid, dtype=object), errors="coerce").dropna()
    return {"reference_grid_j": level_grid, "reference_replay_j": level_replay,
            "reference_drift_pct": 100.0 * (level_replay / level_grid - 1.0),
            "reference_grid_cv": cv(g) if len(g) > 1 else math.nan, "n_reference_grid": int(len(g))}


def reference_corrected(row: dict, level: dict) -> dict:
    """The errors against the replay brought to the grid job's level by the reference kernel (the replay
    divided by 1 + ``reference_drift_pct``/100): ``replay_energy_ref_j``, ``error_ref_pct``,
    ``model_error_ref_pct``, beside the raw ones and the control points' correction; NaN without
    readings in both jobs. A diagnostic: ``benchmarks/reproducibility.py`` prints whether it brings two
    runs closer, and the goals stay judged on the raw errors unless it does."""
    drift = level["reference_drift_pct"]
    out = {**level, "replay_energy_ref_j": math.nan, "error_ref_pct": math.nan, "model_error_ref_pct": math.nan}
    if math.isnan(drift):
        return out
    replay = row["replay_energy_j"] / (1.0 + drift / 100.0)
    return {**out, "replay_energy_ref_j": replay, "error_ref_pct": pct_error(row["estimate_energy_j"], replay),
            "model_error_ref_pct": pct_error(row["model_estimate_energy_j"], replay)}


# Reference readings (one per visit, in the job's order) in the centred rolling median that tells the
# meter's level at each window of a grid job: wide enough that one reading's noise (2-3 %) does not
# move a window, narrow enough to follow a stretch of the job that reads 10-16 % high (2026-12-07).
STEADY_WINDOW = 5
ENERGY_COLUMNS = ("energy_j", "prefill_energy_j", "decode_energy_j")


def steady_grid(measurements: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """The grid job's rows with each window's energies brought to the job's median meter level, and a
    note (None and why, where it cannot be done). The level at a window is the centred rolling median
    of :data:`STEADY_WINDOW` reference-kernel readings around it, in the order the job took them
    (``sweep_index``); each row's ``energy_j``, ``prefill_energy_j`` and ``decode_energy_j`` are
    multiplied by the job's median reading over that level. Serpentine rounds make a linear drift fall
    alike on every point; this takes out what is not linear (a stretch of minutes where the shared CPU
    runs slower), which otherwise falls on the points measured then. A prefill window shared by a
    shape's points takes the factor of the row it is reported in. A labelled correction: the raw rows
    stay what was metered, and :func:`~llm_energy.estimates.replay.validate` reports the model fitted to
    these beside the raw one."""
    m = measurements
    if "reference_energy_j" not in m or "sweep_index" not in m:
        return None, "no reference readings in the grid job (a GPU meter, or a file written before them)"
    ref = pd.to_numeric(m["reference_energy_j"], errors="coerce")
    ok = m["status"] == "ok"
    if not (ref[ok] > 0).all() or int((ref > 0).sum()) < STEADY_WINDOW:
        return None, f"fewer than {STEADY_WINDOW} reference readings, or an ok row without one"
    order = m[ref > 0].sort_values("sweep_index", kind="stable").index
    local = ref[order].rolling(STEADY_WINDOW, center=True, min_periods=1).median()
    factor = (ref[order].median() / local).reindex(m.index).fillna(1.0)
    out = m.copy()
    for c in ENERGY_COLUMNS:
        if c in out:
            out[c] = out[c] * factor
    return out, ""


# Below this share of the control points' grid energy a phase's drift is not read from them (a small
# difference of two noisy windows): that phase takes the level's drift instead.
MIN_PHASE_SHARE = 0.1


def _ok_grid(measurements: pd.DataFrame) -> pd.DataFrame:
    """The grid rows a drift is measured against: ok, valid (where validated), of the grid role."""
    m = measurements[measurements["status"] == "ok"]
    if "valid" in m:
        m = m[m["valid"].fillna(False).astype(bool)]
    return m[is_grid(m["role"])] if "role" in m else m


def _grid_phases(measurements: pd.DataFrame) -> pd.DataFrame:
    """Mean full and prefill energy per grid point (input, output, batch); empty without prefill windows."""
    m = _ok_grid(measurements)
    if "prefill_energy_j" not in m:
        return pd.DataFrame(columns=["energy_j", "prefill_energy_j"])
    return m.groupby(["input_len", "output_len", "batch_size"])[["energy_j", "prefill_energy_j"]].mean()


def _number(value) -> float:
    return math.nan if value is None else float(value)


def prefill_share(measurements: pd.DataFrame, shapes, batch_size: int) -> float:
    """The prefill's share of the summed grid energy of the control ``shapes`` (input, output) at
    ``batch_size``; NaN when the grid has none of them. Below ``MIN_PHASE_SHARE`` the replay job does
    not measure their prefill windows: :func:`phase_drift` would not read them."""
    grid = _grid_phases(measurements)
    keys = [(int(i), int(o), int(batch_size)) for i, o in shapes if (int(i), int(o), int(batch_size)) in grid.index]
    total = float(grid.loc[keys, "energy_j"].sum()) if keys else 0.0
    return float(grid.loc[keys, "prefill_energy_j"].sum()) / total if total > 0 else math.nan


def phase_drift(replays: pd.DataFrame, measurements: pd.DataFrame, level: float) -> dict:
    """How much more each phase of the control points cost in the replay job than in the grid job, in
    percent, each the ratio of the points' summed energies of that phase (so the points that carry the
    energy weigh most, and a near-zero phase of one point cannot dominate): ``meter_drift_prefill_pct``
    from their prefill windows, ``meter_drift_decode_pct`` from their full windows less the prefill
    (its grid energy moved by the prefill's drift). A CPU's decode, many small steps, and its prefill,
    a few large matrix products, speed up and slow down apart with what else the host runs (on two
    default runs decode moved x0.57-0.68 while prefill moved x0.86-0.90): one level cannot bring both
    back. A phase below ``MIN_PHASE_SHARE`` of the points' grid energy (a small difference of two noisy
    windows; the replay job does not measure such a prefill at all) takes the level's drift, and
    ``phase_drift_note`` says which. ``level``: the control points' ``meter_drift_pct``
    (:func:`meter_drift`). NaN for replay files without the control points' prefill column."""
    none = {"meter_drift_prefill_pct": math.nan, "meter_drift_decode_pct": math.nan, "phase_drift_note": ""}
    if replays.empty or "control_prefill_energy_j" not in replays:
        return none
    first = replays.iloc[0]
    grid = _grid_phases(measurements)
    b = int(first["control_batch_size"])
    g_pre = g_full = r_pre = r_full = 0.0
    measured = True  # every control point's prefill window was measured
    for i, o, full, pre in zip(first["control_input_len"], first["control_output_len"], first["control_energy_j"],
                               first["control_prefill_energy_j"]):
        key = (int(i), int(o), b)
        full, pre = _number(full), _number(pre)  # a window not measured reads back as None from parquet
        if key in grid.index and np.isfinite(full) and full > 0:
            g_pre += grid.loc[key, "prefill_energy_j"]
            g_full += grid.loc[key, "energy_j"]
            r_full += full
            measured = measured and bool(np.isfinite(pre))
            r_pre += pre if np.isfinite(pre) else 0.0
    g_dec = g_full - g_pre
    if not (g_full > 0 and np.isfinite(g_pre)):
        return none
    notes = []

    def fallback(phase: str, share: float) -> float:
        notes.append(f"{phase} is {100 * share:.0f} % of the control points' energy: its drift is the level's")
        return level

    share = g_pre / g_full
    fp = float(100 * (r_pre / g_pre - 1)) if share >= MIN_PHASE_SHARE and measured and r_pre > 0 else \
        fallback("prefill", share)
    r_dec = r_full - g_pre * (1 + fp / 100)
    fd = float(100 * (r_dec / g_dec - 1)) if 1 - share >= MIN_PHASE_SHARE and r_dec > 0 else \
        fallback("decode", 1 - share)
    return {"meter_drift_prefill_pct": fp, "meter_drift_decode_pct": fd, "phase_drift_note": "; ".join(notes)}


def phase_corrected(row: dict) -> dict:
    """The model's error with each phase of its estimate brought to the replay job's meter level:
    ``model_estimate_phase_j`` = prefill part x (1 + ``meter_drift_prefill_pct``/100) + decode part x
    (1 + ``meter_drift_decode_pct``/100), and ``model_error_phase_pct`` against the metered replay (raw,
    beside the raw error and the level corrections). The interval is the level correction's
    (``model_interval_corrected_pct``): the correction removes the phases' drift, not its noise. NaN
    without the control points' prefill windows."""
    fp, fd = row.get("meter_drift_prefill_pct", math.nan), row.get("meter_drift_decode_pct", math.nan)
    if math.isnan(fp) or math.isnan(fd):
        return {"model_estimate_phase_j": math.nan, "model_error_phase_pct": math.nan}
    estimate = row["model_prefill_energy_j"] * (1 + fp / 100) + row["model_decode_energy_j"] * (1 + fd / 100)
    return {"model_estimate_phase_j": estimate, "model_error_phase_pct": pct_error(estimate, row["replay_energy_j"])}


def meter_drift(replays: pd.DataFrame, measurements: pd.DataFrame) -> dict:
    """How much more the control points cost in the replay job than in the grid job, in percent (the
    geometric mean of their ratios; NaN without control points): ``meter_drift_pct``, the lowest and
    highest ratio (``control_ratio_min_pct``, ``control_ratio_max_pct``, in % above the grid job's),
    ``n_control_points``; and ``meter_drift_end_pct``, the points' repeats measured after the replay runs
    (``repeat_order: serpentine``, and replay files written before the replay became one job per
    workload; NaN otherwise).
    The grid side is the mean of the point's valid repeats."""
    none = {"meter_drift_pct": math.nan, "control_ratio_min_pct": math.nan, "control_ratio_max_pct": math.nan,
            "n_control_points": 0, "meter_drift_end_pct": math.nan}
    if replays.empty or "control_energy_j" not in replays:
        return none
    first = replays.iloc[0]
    m = _ok_grid(measurements)
    grid = m.groupby(["input_len", "output_len", "batch_size"])["energy_j"].mean()
    b = int(first["control_batch_size"])

    def ratios_of(column: str) -> list[float]:
        if column not in first.index:
            return []
        return [e / grid[(int(i), int(o), b)] for i, o, e in zip(first["control_input_len"],
                                                                  first["control_output_len"], first[column])
                if (int(i), int(o), b) in grid.index and np.isfinite(e) and e > 0 and grid[(int(i), int(o), b)] > 0]

    def geomean_pct(ratios: list[float]) -> float:
        return float(100 * (np.exp(np.mean(np.log(ratios))) - 1)) if ratios else math.nan

    ratios = ratios_of("control_energy_j")
    if not ratios:
        return none
    return {"meter_drift_pct": geomean_pct(ratios),
            "control_ratio_min_pct": float(100 * (min(ratios) - 1)),
            "control_ratio_max_pct": float(100 * (max(ratios) - 1)),
            "n_control_points": len(ratios), "meter_drift_end_pct": geomean_pct(ratios_of("control_end_energy_j"))}
