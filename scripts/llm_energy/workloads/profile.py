"""Workload profiles: one row per request (input tokens, output tokens) from a trace file, and statistics."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy import UserError

log = logging.getLogger(__name__)

# No request has more tokens than this (the longest contexts are about 10^6); a larger count is a
# broken row, not a request.
MAX_TOKENS = 10_000_000


FIX = "copy it again, or delete it so that the pipeline downloads it again"


def trace_fix(path: Path, spec: dict) -> str:
    """What to do about a bad trace: a workload with a url downloads it again once it is deleted; one
    without (placed by hand) needs a good copy placed there."""
    if spec.get("url"):
        return FIX
    return f"copy it again, or place a complete trace at {path} (the workload has no url to download it from)"


def _check_not_binary(path: Path, fix: str) -> None:
    """A trace is text: NUL bytes, or many bytes that are neither UTF-8 nor printable, mean another file."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    text = head.decode("utf-8", errors="replace")
    odd = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r"))
    if b"\x00" in head or odd > max(2, len(text) // 100):
        raise UserError(f"{path}: binary data, not a CSV trace: {fix}")


def _tail(path: Path, n: int = 1 << 16) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - n))
        return f.read()


def _ends_with_newline(path: Path) -> bool:
    return _tail(path, 1).endswith((b"\n", b"\r"))


def _cut_last_line(path: Path, n_fields: int) -> str | None:
    """What is wrong with the last line when the file ends inside a row: no line break, fewer fields."""
    tail = _tail(path)
    if tail.endswith((b"\n", b"\r")):
        return None
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    try:
        fields = next(csv.reader([last]), [])
    except csv.Error:
        fields = []
    if len(fields) >= n_fields:
        return None
    shown = last if len(last) <= 60 else last[:57] + "..."
    return f"the last line {shown!r} has {len(fields)} of {n_fields} fields and no line break"


def _check_token_counts(path: Path, raw: pd.DataFrame, columns: list[str], n_rows: int, cut: str | None,
                        spec: dict) -> None:
    """Every token count a whole number from 0 to ``MAX_TOKENS``; else one line naming the first bad one."""
    first = None  # (position, column, value, why)
    n_bad = np.zeros(len(raw), dtype=bool)
    for col in columns:
        values = raw[col]
        if pd.api.types.is_integer_dtype(values):
            checks = [("is negative", values < 0), (f"is above {MAX_TOKENS:,} (absurd for one request)",
                                                    values > MAX_TOKENS)]
        else:
            num = pd.to_numeric(values, errors="coerce")
            missing = values.isna()
            checks = [("is missing", missing), ("is not a number", num.isna() & ~missing), ("is negative", num < 0),
                      ("is not a whole number", num.notna() & np.isfinite(num) & (num % 1 != 0)),
                      (f"is above {MAX_TOKENS:,} (absurd for one request)", num > MAX_TOKENS)]
        for why, mask in checks:
            mask = mask.fillna(False).to_numpy(dtype=bool)
            if mask.any():
                n_bad |= mask
                pos = int(np.flatnonzero(mask)[0])
                if first is None or pos < first[0]:
                    first = (pos, col, values.iloc[pos], why)
    if first is None:
        return
    pos, col, value, why = first
    shown = "" if pd.isna(value) else (str(int(value)) if isinstance(value, float) and value.is_integer()
                                       else str(value))
    data_row = int(raw.index[pos]) + 1
    replace = "delete it and the pipeline downloads it again" if spec.get("url") else "place a good copy there"
    end = (f"; {cut}: the file was cut short, {trace_fix(path, spec)}" if cut and data_row == n_rows
           else f"; fix those rows, or replace the file ({replace})")
    raise UserError(f"{path}: {int(n_bad.sum())} row(s) have a token count that is missing, non-numeric or negative, "
                    f"fractional or absurd; first: column {col!r}, data row {data_row}: {shown!r} {why}{end}")


def load_trace(path: str | Path, spec: dict) -> tuple[pd.DataFrame, dict]:
    """Read a request trace into ``input_tokens``/``output_tokens`` and say which rows were dropped and why.

    ``spec`` is the workload's config entry (columns, ``filter``, ``drop_zero_output``).
    """
    path = Path(path)
    fix = trace_fix(path, spec)
    in_col, out_col = spec["input_column"], spec["output_column"]
    filters = spec.get("filter") or {}
    wanted = [in_col, out_col, *filters]
    _check_not_binary(path, fix)
    try:
        header = pd.read_csv(path, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV trace ({str(exc).splitlines()[0]}): {fix}") from None
    missing = [c for c in wanted if c not in header.columns]
    if missing:
        raise UserError(f"{path}: column(s) {', '.join(map(repr, missing))} not found; the file has "
                        f"{', '.join(map(repr, header.columns))} (set input_column/output_column in the config)")
    try:
        raw = pd.read_csv(path, usecols=list(dict.fromkeys(wanted)))
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: malformed trace ({str(exc).splitlines()[0]}): {fix}") from None
    n_rows = len(raw)
    if n_rows == 0:
        advice = ("delete it so that the pipeline downloads it again" if spec.get("url") else
                  f"place a trace with rows at {path} (the workload has no url to download it from)")
        raise UserError(f"{path}: the trace has a header but no requests: {advice}")
    dropped: dict[str, int] = {}
    for col, value in filters.items():
        keep = raw[col] == value
        dropped[f"{col} != {value!r}"] = int((~keep).sum())
        raw = raw[keep]
    cut = _cut_last_line(path, len(header.columns))
    _check_token_counts(path, raw, [in_col, out_col], n_rows, cut, spec)
    if cut:
        raise UserError(f"{path}: {cut}; the file was cut short (an interrupted download or copy): {fix}")
    if not _ends_with_newline(path) and not spec.get("sha256"):
        log.warning("%s does not end with a line break and the workload has no sha256 to check it: if it was cut "
                    "while copying, its last row is wrong (set the workload's sha256 to be sure)", path)
    lengths = raw[[in_col, out_col]].apply(pd.to_numeric)
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
