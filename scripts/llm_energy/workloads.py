"""Workload profiles: one row per request (input tokens, output tokens) from a trace file, and statistics."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from . import UserError

log = logging.getLogger(__name__)


def load_trace(path: str | Path, spec: dict) -> tuple[pd.DataFrame, dict]:
    """Read a request trace into ``input_tokens``/``output_tokens`` and say which rows were dropped and why.

    ``spec`` is the workload's config entry (columns, ``filter``, ``drop_zero_output``).
    """
    path = Path(path)
    in_col, out_col = spec["input_column"], spec["output_column"]
    filters = spec.get("filter") or {}
    wanted = [in_col, out_col, *filters]
    try:
        header = pd.read_csv(path, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV trace ({str(exc).splitlines()[0]})") from None
    missing = [c for c in wanted if c not in header.columns]
    if missing:
        raise UserError(f"{path}: column(s) {', '.join(map(repr, missing))} not found; the file has "
                        f"{', '.join(map(repr, header.columns))} (set input_column/output_column in the config)")
    try:
        raw = pd.read_csv(path, usecols=list(dict.fromkeys(wanted)))
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: malformed trace ({str(exc).splitlines()[0]})") from None
    n_rows = len(raw)
    if n_rows == 0:
        raise UserError(f"{path}: the trace has a header but no requests")
    dropped: dict[str, int] = {}
    for col, value in filters.items():
        keep = raw[col] == value
        dropped[f"{col} != {value!r}"] = int((~keep).sum())
        raw = raw[keep]
    lengths = raw[[in_col, out_col]].apply(pd.to_numeric, errors="coerce")
    bad = lengths.isna().any(axis=1) | (lengths < 0).any(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{path}: {int(bad.sum())} row(s) have a missing, non-numeric or negative token count "
                        f"(first at data row {raw.index[first] + 1}: {raw.iloc[first].to_dict()})")
    df = pd.DataFrame({"input_tokens": lengths[in_col].astype("int64"),
                       "output_tokens": lengths[out_col].astype("int64")})
    if spec.get("drop_zero_output", True):
        zero = df["output_tokens"] == 0
        dropped["zero output tokens (failed request)"] = int(zero.sum())
        df = df[~zero]
    if df.empty:
        raise UserError(f"{path}: no request is left after filtering ({dropped})")
    info = {"n_rows_in_file": n_rows, "rows_dropped": {k: v for k, v in dropped.items() if v}}
    return df.reset_index(drop=True), info


def describe(values: pd.Series) -> dict:
    """Mean, standard deviation (sample), median, p99 (linear interpolation), min and max."""
    v = values.to_numpy(dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "median": float(np.median(v)), "p99": float(np.percentile(v, 99)),
            "min": float(v.min()), "max": float(v.max())}


def stats(df: pd.DataFrame, info: dict | None = None) -> dict:
    """The workload's statistics file: request count, both length distributions, dropped rows."""
    return {"n_requests": int(len(df)), "input_tokens": describe(df["input_tokens"]),
            "output_tokens": describe(df["output_tokens"]), **(info or {})}
