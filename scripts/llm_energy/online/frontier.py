"""Energy against latency of online serving (the rate sweep, ``results/serving/``): which settings are
on the Pareto front (least energy for a given latency), and the least energy per request that meets
each latency target (config ``online.latency_targets``).

Pure functions of the serving rows: the figure (``paper.figures.frontier.fig_energy_latency_frontier``) and the
table (``tables.table_latency_targets``) draw and print what they return.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

ENERGY = "energy_per_request_j"
# What names one setting of the rate sweep: the stack, the offered rate and the server's batch limit.
SETTING = ("hardware", "model", "variant", "decoding", "rate_per_s", "batch_size")
LATENCY_METRICS = ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s",
                   "e2e_p50_s", "e2e_p90_s", "e2e_p99_s")


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def pareto_front(points: Iterable[tuple[float, float]]) -> list[bool]:
    """For each ``(latency, energy)`` point, whether it is on the Pareto front: no other point has
    latency and energy both at most its own with one of them lower. Exact duplicates are both on the
    front; a point with a missing (NaN) value never is."""
    points = [(float(lat), float(e)) if _finite(lat) and _finite(e) else None for lat, e in points]
    order = sorted((p + (i,) for i, p in enumerate(points) if p is not None))
    on = [False] * len(points)
    best: tuple[float, float] | None = None  # the front point with the least energy so far
    for lat, e, i in order:
        if best is None or e < best[1] or (lat, e) == best:
            on[i] = True
            best = (lat, e)
    return on


def eligible(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows that count for the front and the targets: measured over a whole window (``timeout``
    rows hold partial values) with an energy per request and a value of ``metric``."""
    if rows.empty or metric not in rows or ENERGY not in rows:
        return rows.iloc[0:0]
    status = rows["status"] if "status" in rows else pd.Series("ok", index=rows.index)
    ok = (status != "timeout") & rows[ENERGY].map(_finite) & rows[metric].map(_finite)
    return rows[ok]


def latency_targets(rows: pd.DataFrame, targets: Mapping[str, float]) -> list[dict]:
    """One dict per target ``{metric: limit}``: the least energy per request among the eligible rows
    whose ``metric`` is at most ``limit``, and the setting that gets it (``result`` "met"); "not met"
    with the best latency reached when no row meets it; "no data" when no row has the metric;
    "unknown metric" for a name that is not a latency column. Ties in energy go to the lower latency."""
    out = []
    for metric, limit in targets.items():
        row = {"target": metric, "limit": float(limit), "result": "", ENERGY: math.nan,
               **dict.fromkeys(SETTING), "latency": math.nan, "best_latency": math.nan, "n_meeting": 0,
               "n_rows": 0, "note": ""}
        if metric not in LATENCY_METRICS:
            out.append({**row, "result": "unknown metric",
                        "note": f"{metric} is not a latency column: use one of {', '.join(LATENCY_METRICS)}"})
            continue
        usable = eligible(rows, metric)
        row["n_rows"] = len(usable)
        if usable.empty:
            out.append({**row, "result": "no data", "note": f"no serving row has {metric}"})
            continue
        row["best_latency"] = float(usable[metric].min())
        meet = usable[usable[metric] <= float(limit)]
        row["n_meeting"] = len(meet)
        if meet.empty:
            out.append({**row, "result": "not met"})
            continue
        best = meet.sort_values([ENERGY, metric], kind="stable").iloc[0]
        out.append({**row, "result": "met", ENERGY: float(best[ENERGY]), "latency": float(best[metric]),
                    **{k: best.get(k) for k in SETTING}})
    return out


FRONT_METRICS = ("tpot_p90_s", "e2e_p90_s")
FRONT_COLS = ["workload", "metric", "hardware", "model", "variant", "decoding", "batch_size", "rate_per_s", "status",
              "energy_source", "latency_s", ENERGY, "on_front", "note"]


def _front_note(status, latency, energy) -> str:
    if status == "timeout":
        return "timeout: values partial, never on the front"
    if not (_finite(latency) and _finite(energy)):
        return "not measured"
    return ""


def front_table(rows: pd.DataFrame, metrics: Iterable[str] = FRONT_METRICS) -> pd.DataFrame:
    """One row per serving row and latency metric (``FRONT_COLS``): its latency and energy per request,
    and ``on_front``: whether it is on the Pareto front of its workload's :func:`eligible` rows (across
    rates, stacks and batch limits); ``note`` says why a row cannot be."""
    parts = []
    if rows.empty:
        return pd.DataFrame(columns=FRONT_COLS)
    rows = rows.reindex(columns=sorted(set(rows.columns) | set(FRONT_COLS) - {"metric", "latency_s", "on_front",
                                                                              "note"} | set(metrics)))
    for metric in metrics:
        for _, grp in rows.groupby("workload", sort=True, dropna=False):
            part = grp.assign(metric=metric, latency_s=grp[metric], on_front=False)
            ok = eligible(grp, metric)
            flags = pareto_front(zip(ok[metric], ok[ENERGY]))
            part.loc[ok.index[flags], "on_front"] = True
            part["note"] = [_front_note(s, lat, e) for s, lat, e in zip(part["status"], part[metric], part[ENERGY])]
            parts.append(part[FRONT_COLS])
    return pd.concat(parts, ignore_index=True).sort_values(["workload", "metric", "latency_s"], kind="stable",
                                                             ignore_index=True)
