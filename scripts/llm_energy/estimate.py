"""Whole-workload energy from binned requests and measured batch energies (the paper's Section 4).

    E_hat = sum over bins N(I*, O*) / B * E_batch(I*, O*, B)

with B the batch size of the measured points and E_batch the mean over repeats of the energy of
one batch of B requests of shape (I*, O*). The paper divides fractionally (``energy_j``); the
number of whole batches a server would run, ceil(N / B), gives ``energy_whole_batches_j``.
Figures and tables use the fractional form, as the paper does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import UserError

CELL_KEYS = ["hardware", "model", "variant", "decoding"]


def batch_energy(measurements: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Mean and spread over repeats of each (input_len, output_len) point at ``batch_size``."""
    m = measurements[measurements["batch_size"] == batch_size]
    g = m.groupby(["input_len", "output_len"])
    out = g.agg(energy_batch_j=("energy_j", "mean"), energy_batch_std_j=("energy_j", "std"),
                duration_batch_s=("duration_s", "mean"), n_repeats=("repeat", "count")).reset_index()
    out["energy_batch_std_j"] = out["energy_batch_std_j"].fillna(0.0)
    return out


def binned_estimate(bins: pd.DataFrame, measurements: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Per-bin contributions to the workload's energy; raises when a needed point was not measured."""
    per_point = batch_energy(measurements, batch_size)
    merged = bins.merge(per_point, how="left", left_on=["input_bin", "output_bin"],
                        right_on=["input_len", "output_len"])
    missing = merged[merged["energy_batch_j"].isna()]
    if not missing.empty:
        pts = ", ".join(f"(in={r.input_bin}, out={r.output_bin})" for r in missing.itertuples())
        raise UserError(f"no measurement at batch {batch_size} for bin(s) {pts}: add them to the cell's points "
                        "(measurement.batch_size and bins) and rerun the measurement")
    merged = merged.drop(columns=["input_len", "output_len"])
    merged["batch_size"] = batch_size
    merged["n_batches"] = merged["n_requests"] / batch_size
    merged["n_whole_batches"] = np.ceil(merged["n_requests"] / batch_size).astype("int64")
    merged["energy_j"] = merged["n_batches"] * merged["energy_batch_j"]
    merged["energy_whole_batches_j"] = merged["n_whole_batches"] * merged["energy_batch_j"]
    return merged


def workload_estimate(bins: pd.DataFrame, summary: dict, measurements: pd.DataFrame,
                      batch_size: int) -> tuple[dict, pd.DataFrame]:
    """One summary row (workload totals) and the per-bin table for one workload and one cell."""
    per_bin = binned_estimate(bins, measurements, batch_size)
    sources = sorted(measurements["energy_source"].unique())
    total = float(per_bin["energy_j"].sum())
    row = {
        "n_requests": summary["n_requests"], "n_included": summary["n_included"],
        "n_excluded": summary["n_excluded"], "n_bins": int(len(per_bin)), "batch_size": batch_size,
        "energy_j": total, "energy_whole_batches_j": float(per_bin["energy_whole_batches_j"].sum()),
        "energy_per_request_j": total / summary["n_included"] if summary["n_included"] else math.nan,
        "energy_source": "+".join(sources),
    }
    return row, per_bin
