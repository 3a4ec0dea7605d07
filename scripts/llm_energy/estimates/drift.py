"""The meter's level in the replay job against the grid job's, and the errors brought to it.

A CPU's time-based estimate moves from job to job with what else the host runs. The replay job measures
some of the grid's points again (control points; with ``repeat_order: serpentine`` half their repeats
before its runs and half after) and reads the reference kernel beside them. From those:
:func:`meter_drift` (how much more the control points cost in the replay job), :func:`intervals` (how
far an estimate may sit from its replay for the noise alone), and two corrections beside the raw
errors: :func:`drift_corrected` (by the control points) and :func:`reference_corrected` (by the
reference kernel). The raw errors stay what was metered; docs/method.md says when to read which.
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
    m = measurements[measurements["status"] == "ok"]
    if "valid" in m:
        m = m[m["valid"].fillna(False).astype(bool)]
    m = m[is_grid(m["role"])] if "role" in m else m
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
