"""Measurement validation before aggregation (in the spirit of ML.ENERGY's validator and MLPerf's rules).

Every row of a measurement table gets ``valid`` and ``invalid_reason``. Per repeat: the metered
window lasted at least ``min_window_s``; energies are positive (no counter reset or negative delta);
every request generated exactly its tokens; a power-reading meter's timeline covers the window.
Per point: the spread of energy over repeats (coefficient of variation) is at most ``max_cv``,
otherwise all its repeats are invalid. Out-of-memory rows are not measurements and stay ``oom``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import UserError

POINT = ["input_len", "output_len", "batch_size"]


def check_measurements(df: pd.DataFrame, *, min_window_s: float, max_cv: float,
                       min_power_coverage: float = 0.5, sample_interval_s: float = 0.1) -> pd.DataFrame:
    """A copy of ``df`` with ``valid`` (bool) and ``invalid_reason`` (``""`` when valid)."""
    out = df.copy()
    reasons = pd.Series([[] for _ in range(len(out))], index=out.index, dtype=object)
    ok = out["status"] == "ok" if "status" in out else pd.Series(True, index=out.index)

    def flag(mask: pd.Series, why: str) -> None:
        for i in out.index[mask & ok]:
            reasons[i].append(why)

    window = out["duration_s"] * out.get("n_batches_in_window", 1)
    flag(window < min_window_s * 0.999, f"window shorter than {min_window_s:g} s")
    flag(~(out["energy_j"] > 0), "non-positive energy (counter reset or no reading)")
    flag(~(out["prefill_energy_j"] > 0), "non-positive prefill energy")
    flag(out["output_tokens"] != out["output_len"] * out["batch_size"], "output tokens differ from requested")
    if "n_power_samples" in out:
        timed = out["energy_source"].astype(str).str.startswith("nvml")
        expected = window / sample_interval_s
        flag(timed & (out["n_power_samples"] < np.maximum(2, min_power_coverage * expected)),
             "power timeline does not cover the window")
    valid_energy = out["energy_j"].where(ok)
    g = valid_energy.groupby([out[c] for c in POINT])
    cv = (g.transform("std") / g.transform("mean")).fillna(0.0)
    flag(cv > max_cv, f"repeats spread more than CV {max_cv:g}")
    out["invalid_reason"] = ["; ".join(r) for r in reasons]
    out["valid"] = ok & (out["invalid_reason"] == "")
    out["energy_cv"] = cv.where(ok)
    return out


def summary(checked: pd.DataFrame) -> dict:
    """How many points (and rows) were invalid, and why."""
    bad = checked[(checked["status"] == "ok") & ~checked["valid"]]
    return {"n_rows": int(len(checked)), "n_invalid_rows": int(len(bad)),
            "n_invalid_points": int(bad[POINT].drop_duplicates().shape[0]),
            "reasons": bad["invalid_reason"].value_counts().to_dict()}


def enforce(checked: pd.DataFrame, where: str, fatal: bool) -> None:
    """With ``fatal``, any invalid row stops the pipeline with the first reason."""
    s = summary(checked)
    if fatal and s["n_invalid_rows"]:
        first = checked[(checked["status"] == "ok") & ~checked["valid"]].iloc[0]
        raise UserError(f"{where}: {s['n_invalid_rows']} invalid measurement row(s) and validation.fail_on_invalid "
                        f"is true; first: in={first.input_len} out={first.output_len} batch={first.batch_size} "
                        f"repeat={first['repeat']}: {first['invalid_reason']}")
