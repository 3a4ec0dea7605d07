"""Measurement validation before aggregation (in the spirit of ML.ENERGY's validator and MLPerf's rules).

Every row of a measurement table gets ``valid`` and ``invalid_reason``. Per repeat: the metered
window lasted at least ``min_window_s``; energies are positive (no counter reset or negative delta);
every request generated exactly its tokens; a power-reading meter's timeline covers the window.
Per point: the spread of energy over repeats (coefficient of variation) is at most ``max_cv``,
otherwise all its repeats are invalid. Out-of-memory rows are not measurements and stay ``oom``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import UserError

POINT = ["input_len", "output_len", "batch_size"]
CELL_KEYS = ["hardware", "model", "variant", "decoding"]
# Columns every row of a measurement table has (an out-of-memory or unsupported point too) ...
REQUIRED = [*POINT, "repeat", "status", *CELL_KEYS]
# ... and those the rows of a measured point (status ok) add: what validation and the estimate read.
REQUIRED_IF_MEASURED = ["energy_j", "prefill_energy_j", "duration_s", "output_tokens", "energy_source"]
NUMERIC = [*POINT, "repeat", "energy_j", "prefill_energy_j", "duration_s", "output_tokens", "n_batches_in_window",
           "n_power_samples"]
RECOPY = "copy it again from the machine that measured it, or delete it to measure the cell again there"


def read_measurements(path: str | Path, cell: dict | None = None) -> pd.DataFrame:
    """Read a measurement table (this machine's or one copied in) and check it is one; one line when not.

    ``cell``: the hardware, model, variant and decoding its path names; rows that say otherwise
    (a file copied into the wrong folder) are refused.
    """
    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {RECOPY}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file; all mean the same
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(f"'{path}'", "").replace(str(path), "")
        if first.startswith("Could not open Parquet input source"):
            first = first.split(":", 1)[-1].strip()
        raise UserError(f"{path}: not a Parquet table ({first}); {RECOPY}") from None
    if df.empty:
        raise UserError(f"{path}: the measurement table has no rows; {RECOPY}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if "status" in df and (df["status"] == "ok").any():
        missing += [c for c in REQUIRED_IF_MEASURED if c not in df.columns]
    if missing:
        raise UserError(f"{path}: not a measurement table of this pipeline: column(s) {', '.join(missing)} missing "
                        f"({len(df.columns)} columns there); {RECOPY}")
    for col in [c for c in NUMERIC if c in df.columns]:
        if not (pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])):
            raise UserError(f"{path}: column {col} holds {df[col].dtype} values, not numbers; {RECOPY}")
    for col in POINT:
        bad = (df[col].isna() | (df[col] < 1)).to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise UserError(f"{path}: column {col} is {df[col].iloc[first]} in row {first + 1} (a length or batch "
                            f"size is at least 1); {RECOPY}")
    for col in CELL_KEYS:
        values = sorted(df[col].astype(str).unique())
        if len(values) != 1:
            raise UserError(f"{path}: column {col} holds {len(values)} values ({', '.join(values[:4])}), one cell's "
                            f"table holds one; {RECOPY}")
        if cell and cell.get(col) is not None and values[0] != str(cell[col]):
            raise UserError(f"{path}: its rows are of {col} {values[0]!r}, but the folder says {cell[col]!r}: "
                            f"move it to the folder of its cell, or {RECOPY}")
    return df


def check_measurements(df: pd.DataFrame, *, min_window_s: float, max_cv: float,
                       min_power_coverage: float = 0.5, sample_interval_s: float = 0.1) -> pd.DataFrame:
    """A copy of ``df`` with ``valid`` (bool) and ``invalid_reason`` (``""`` when valid)."""
    out = df.copy()
    for col in REQUIRED_IF_MEASURED:
        if col not in out:  # a table whose every point ran out of memory has no energy columns
            out[col] = np.nan if col != "energy_source" else ""
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


def unusable(checked: pd.DataFrame) -> str | None:
    """Why none of a checked table's rows can be used (every measured row invalid, or none measured), else None."""
    measured = checked[checked["status"] == "ok"]
    if measured.empty:
        statuses = ", ".join(f"{n} {s}" for s, n in checked["status"].value_counts().items())
        return f"no point was measured ({statuses})"
    if not measured["valid"].any():
        return f"all {len(measured)} measured rows failed validation (first reason: {measured['invalid_reason'].iloc[0]})"
    return None


def enforce(checked: pd.DataFrame, where: str, fatal: bool) -> None:
    """With ``fatal``, any invalid row stops the pipeline with the first reason."""
    s = summary(checked)
    if fatal and s["n_invalid_rows"]:
        first = checked[(checked["status"] == "ok") & ~checked["valid"]].iloc[0]
        raise UserError(f"{where}: {s['n_invalid_rows']} invalid measurement row(s) and validation.fail_on_invalid "
                        f"is true; first: in={first.input_len} out={first.output_len} batch={first.batch_size} "
                        f"repeat={first['repeat']}: {first['invalid_reason']}")
