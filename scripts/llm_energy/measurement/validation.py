"""Measurement validation before aggregation (in the spirit of ML.ENERGY's validator and MLPerf's rules).

Every row of a measurement table gets ``valid`` and ``invalid_reason``. Per repeat: the metered
window lasted at least ``min_window_s``; energies are positive (no counter reset or negative delta);
every request generated exactly its tokens; a power-reading meter's timeline covers the window.
Per point: the spread of energy over repeats (coefficient of variation) is at most ``max_cv``,
otherwise all its repeats are invalid. Out-of-memory rows are not measurements and stay ``oom``.

GPU windows (``energy_source`` nvml*) also pass ML.ENERGY-style gates (:func:`_gpu_gates`): long
enough for the energy counter's update period, average power between a floor (half the idle power,
or a fixed one) and 1.1 x the summed power limit, no GPU at its slowdown temperature at the end,
power limit and application clock unchanged within the window and since the cell's first window,
and optionally the power timeline within ``max_timeline_gap`` of the counter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy import UserError
from llm_energy.pipeline.cells import CELL_KEYS

POINT = ["input_len", "output_len", "batch_size"]
# Columns every row of a measurement table has (an out-of-memory or unsupported point too) ...
REQUIRED = [*POINT, "repeat", "status", *CELL_KEYS]
# ... and those the rows of a measured point (status ok) add: what validation and the estimate read.
REQUIRED_IF_MEASURED = ["energy_j", "prefill_energy_j", "duration_s", "output_tokens", "energy_source"]
NUMERIC = [*POINT, "repeat", "energy_j", "prefill_energy_j", "duration_s", "output_tokens", "n_batches_in_window",
           "n_power_samples"]
RECOPY = "copy it again from the machine that measured it, or delete it to measure the cell again there"


def recopy(hardware: str | None, here: str | None) -> str:
    """What to do about a bad measurement file of ``hardware`` on a machine detected as ``here``: only a
    machine of that hardware can measure it again (deleting it elsewhere only leaves the cell out)."""
    if hardware is None or here is None:
        return RECOPY
    if hardware == here:
        return "delete it and run snakemake again to measure the cell again here, or copy it again from where it came"
    return (f"copy it again from the machine that measured it (this machine is {here}, so only a machine detected "
            f"as {hardware} can measure the cell again)")
# The GPU gates' options, as the config's validation section names them (see gate_options).
GATE_DEFAULTS = {"min_counter_periods": 10.0, "min_power_fraction_of_idle": 0.5, "min_avg_power_w": None,
                 "max_power_fraction_of_limit": 1.1, "max_temperature_c": None, "max_timeline_gap": None}


def read_measurements(path: str | Path, cell: dict | None = None, here: str | None = None) -> pd.DataFrame:
    """Read a measurement table (this machine's or one copied in) and check it is one; one line when not.

    ``cell``: the hardware, model, variant and decoding its path names; rows that say otherwise
    (a file copied into the wrong folder) are refused. ``here``: this machine's hardware, so that the
    advice of a message is one that works here (:func:`recopy`).
    """
    path = Path(path)
    fix = recopy((cell or {}).get("hardware"), here)
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file; all mean the same
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(f"'{path}'", "").replace(str(path), "")
        if first.startswith("Could not open Parquet input source"):
            first = first.split(":", 1)[-1].strip()
        raise UserError(f"{path}: not a Parquet table ({first}); {fix}") from None
    if df.empty:
        raise UserError(f"{path}: the measurement table has no rows; {fix}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if "status" in df and (df["status"] == "ok").any():
        missing += [c for c in REQUIRED_IF_MEASURED if c not in df.columns]
    if missing:
        raise UserError(f"{path}: not a measurement table of this pipeline: column(s) {', '.join(missing)} missing "
                        f"({len(df.columns)} columns there); {fix}")
    for col in [c for c in NUMERIC if c in df.columns]:
        if not (pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])):
            raise UserError(f"{path}: column {col} holds {df[col].dtype} values, not numbers; {fix}")
    for col in POINT:
        bad = (df[col].isna() | (df[col] < 1)).to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise UserError(f"{path}: column {col} is {df[col].iloc[first]} in row {first + 1} (a length or batch "
                            f"size is at least 1); {fix}")
    for col in CELL_KEYS:
        values = sorted(df[col].astype(str).unique())
        if len(values) != 1:
            raise UserError(f"{path}: column {col} holds {len(values)} values ({', '.join(values[:4])}), one cell's "
                            f"table holds one; {fix}")
        if cell and cell.get(col) is not None and values[0] != str(cell[col]):
            raise UserError(f"{path}: its rows are of {col} {values[0]!r}, but the folder says {cell[col]!r}: "
                            "move it to the folder of its cell (results/measurements/<hardware>/<model>/<variant>/"
                            "<decoding>.parquet, as its rows say)")
    return df


def gate_options(validation: dict) -> dict:
    """The GPU gates' keyword arguments of :func:`check_measurements` from the config's validation section."""
    return {k: validation[k] for k in GATE_DEFAULTS if k in validation}


def check_measurements(df: pd.DataFrame, *, min_window_s: float, max_cv: float,
                       min_power_coverage: float = 0.5, sample_interval_s: float = 0.1, **gates) -> pd.DataFrame:
    """A copy of ``df`` with ``valid`` (bool) and ``invalid_reason`` (``""`` when valid).

    ``gates``: options of the GPU gates (:data:`GATE_DEFAULTS`, the config's validation keys).
    """
    unknown = set(gates) - set(GATE_DEFAULTS)
    if unknown:
        raise TypeError(f"check_measurements: unknown option(s) {', '.join(sorted(unknown))}")
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
    # Decode is the full run minus its prefill window: where the meter's noise between the two windows
    # exceeds the decode's own energy, the difference is negative and says nothing about decode.
    decode = out["energy_j"] - out["prefill_energy_j"]
    flag((out["output_len"] > 1) & (out["energy_j"] > 0) & (out["prefill_energy_j"] > 0) & ~(decode > 0),
         "non-positive decode energy (the prefill window measured at least the full run: meter noise "
         "larger than the decode)")
    flag(out["output_tokens"] != out["output_len"] * out["batch_size"], "output tokens differ from requested")
    if "n_power_samples" in out:
        timed = out["energy_source"].astype(str).str.startswith("nvml")
        expected = window / sample_interval_s
        flag(timed & (out["n_power_samples"] < np.maximum(2, min_power_coverage * expected)),
             "power timeline does not cover the window")
    _gpu_gates(out, flag, window, **{**GATE_DEFAULTS, **gates})
    valid_energy = out["energy_j"].where(ok)
    # a padded point shares its shape with a grid point: its repeats are its own
    g = valid_energy.groupby([out[c] for c in POINT] + ([out["role"].astype(str)] if "role" in out else []))
    cv = (g.transform("std") / g.transform("mean")).fillna(0.0)
    flag(cv > max_cv, f"repeats spread more than CV {max_cv:g}")
    out["invalid_reason"] = ["; ".join(r) for r in reasons]
    out["valid"] = ok & (out["invalid_reason"] == "")
    out["energy_cv"] = cv.where(ok)
    return out


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, all NaN where the table does not have it (an older table, another meter)."""
    if name not in df:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[name], errors="coerce")


def _first_of_cell(values: pd.Series, df: pd.DataFrame, rows: pd.Series) -> pd.Series:
    """Each row's cell's first value of ``values`` among ``rows`` (the cell's first window)."""
    keys = [c for c in CELL_KEYS if c in df]
    picked = values.where(rows)
    if not keys:
        first = picked.dropna()
        return pd.Series(first.iloc[0] if len(first) else np.nan, index=df.index)
    return picked.groupby([df[c].astype(str) for c in keys]).transform("first")


def _gpu_gates(out: pd.DataFrame, flag, window: pd.Series, *, min_counter_periods: float,
               min_power_fraction_of_idle: float, min_avg_power_w: float | None, max_power_fraction_of_limit: float,
               max_temperature_c: float | None, max_timeline_gap: float | None) -> None:
    """Validity of GPU windows, in the spirit of ML.ENERGY's validator (see the module docstring)."""
    gpu = out["energy_source"].astype(str).str.startswith("nvml")
    if not gpu.any():
        return
    period = _col(out, "nvml_counter_period_s")
    prefill_window = _col(out, "prefill_duration_s") * _col(out, "n_prefill_batches_in_window")
    flag(gpu & (window < min_counter_periods * period),
         f"window shorter than {min_counter_periods:g} updates of the energy counter")
    flag(gpu & (prefill_window < min_counter_periods * period),
         f"prefill window shorter than {min_counter_periods:g} updates of the energy counter")
    power = _col(out, "avg_power_w").fillna(out["energy_j"] / out["duration_s"])
    floor = min_power_fraction_of_idle * _col(out, "idle_power_w")
    if min_avg_power_w is not None:
        floor = np.fmax(floor, min_avg_power_w)
    flag(gpu & (power < floor), "average power below the floor (idle power share or min_avg_power_w)")
    limit = _col(out, "power_limit_total_w_start").fillna(_col(out, "power_limit_w") * _col(out, "n_gpus"))
    flag(gpu & (power > max_power_fraction_of_limit * limit),
         f"average power above {max_power_fraction_of_limit:g} x the power limit")
    hot = _col(out, "temp_slowdown_c") if max_temperature_c is None else max_temperature_c
    flag(gpu & (_col(out, "temperature_c_end") >= hot), "GPU at its slowdown temperature (clocks throttled)")
    for name, what in (("power_limit_total_w", "power limit"), ("app_sm_clock_mhz", "application SM clock")):
        start, end = _col(out, f"{name}_start"), _col(out, f"{name}_end")
        flag(gpu & start.notna() & end.notna() & (start != end), f"{what} changed during the window")
        first = _first_of_cell(start, out, gpu & (out["status"] == "ok" if "status" in out else gpu))
        flag(gpu & start.notna() & first.notna() & (start != first), f"{what} differs from the cell's first window")
    if max_timeline_gap is not None:
        gap = (_col(out, "timeline_energy_j") / out["energy_j"] - 1.0).abs()
        flag(gpu & (gap > max_timeline_gap), f"power timeline and energy counter differ by more than "
                                             f"{max_timeline_gap:g}")


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
        first = measured["invalid_reason"].iloc[0]
        return f"all {len(measured)} measured rows failed validation (first reason: {first})"
    return None


def enforce(checked: pd.DataFrame, where: str, fatal: bool) -> None:
    """With ``fatal``, any invalid row stops the pipeline with the first reason."""
    s = summary(checked)
    if fatal and s["n_invalid_rows"]:
        first = checked[(checked["status"] == "ok") & ~checked["valid"]].iloc[0]
        raise UserError(f"{where}: {s['n_invalid_rows']} invalid measurement row(s) and validation.fail_on_invalid "
                        f"is true; first: in={first.input_len} out={first.output_len} batch={first.batch_size} "
                        f"repeat={first['repeat']}: {first['invalid_reason']}")
