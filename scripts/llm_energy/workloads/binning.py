"""Binning: each request goes to the smallest edge at or above it, per axis (the paper's Section 4)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def bin_edges_ceiling(values: np.ndarray, edges: list[int]) -> np.ndarray:
    """The smallest edge >= each value, or 0 where the value is above the largest edge."""
    edges_arr = np.asarray(edges)
    idx = np.searchsorted(edges_arr, np.asarray(values), side="left")
    out = np.zeros(len(idx), dtype=np.int64)
    inside = idx < len(edges_arr)
    out[inside] = edges_arr[idx[inside]]
    return out


def within_edges(df: pd.DataFrame, input_edges: list[int], output_edges: list[int]) -> np.ndarray:
    """The requests the binned estimate covers: at or below the top edge of both axes."""
    ib = bin_edges_ceiling(df["input_tokens"].to_numpy(), input_edges)
    ob = bin_edges_ceiling(df["output_tokens"].to_numpy(), output_edges)
    return (ib > 0) & (ob > 0)


def bin_requests(df: pd.DataFrame, input_edges: list[int], output_edges: list[int]) -> tuple[pd.DataFrame, dict]:
    """Count requests per (input bin, output bin); requests past the top edge of either axis are excluded.

    Returns the bin table (``input_bin``, ``output_bin``, ``n_requests``; only non-empty bins) and
    a summary with the excluded counts.
    """
    ib = bin_edges_ceiling(df["input_tokens"].to_numpy(), input_edges)
    ob = bin_edges_ceiling(df["output_tokens"].to_numpy(), output_edges)
    keep = within_edges(df, input_edges, output_edges)
    table = (pd.DataFrame({"input_bin": ib[keep], "output_bin": ob[keep]})
             .value_counts().rename("n_requests").reset_index()
             .sort_values(["input_bin", "output_bin"]).reset_index(drop=True))
    table["n_requests"] = table["n_requests"].astype("int64")
    total_tokens = int(df["input_tokens"].sum() + df["output_tokens"].sum())
    excluded_tokens = int(df["input_tokens"].to_numpy()[~keep].sum() + df["output_tokens"].to_numpy()[~keep].sum())
    inc = df[keep]
    summary = {
        "n_requests": int(len(df)), "n_included": int(keep.sum()), "n_excluded": int((~keep).sum()),
        "excluded_token_share": excluded_tokens / total_tokens if total_tokens else 0.0,
        # How much binning inflates the included requests' lengths (binned tokens / real tokens).
        "input_inflation": float(ib[keep].sum() / inc["input_tokens"].sum()) if len(inc) else float("nan"),
        "output_inflation": float(ob[keep].sum() / inc["output_tokens"].sum()) if len(inc) else float("nan"),
        "n_excluded_input": int((ib == 0).sum()), "n_excluded_output": int((ob == 0).sum()),
        "input_edges": list(map(int, input_edges)), "output_edges": list(map(int, output_edges)),
    }
    return table, summary


def excluded_message(workload: str, summary: dict) -> str:
    """What the binned estimate leaves out of a workload (its bin summary), in words; empty when nothing."""
    n, total = summary["n_excluded"], summary["n_requests"]
    if not n:
        return ""
    return (f"{workload}: {n:,} of {total:,} requests ({100 * n / total:.1f} %), "
            f"{100 * summary['excluded_token_share']:.1f} % of tokens, lie beyond the top bin edges (input "
            f"{summary['input_edges'][-1]}, output {summary['output_edges'][-1]}) and are left out of the binned "
            "estimate (and of the model estimate beside it, which prices the same requests); widen "
            "bins.input/bins.output or read the energy model's whole-trace estimate "
            "(model_whole_trace_energy_j in paper/tables/table4_estimates.csv), which extrapolates them")


def warn_excluded(workload: str, summary: dict) -> None:
    """A warning in the bin job's log when requests fall beyond the bin edges (nothing otherwise)."""
    message = excluded_message(workload, summary)
    if message:
        log.warning("%s", message)
