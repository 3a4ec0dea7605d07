"""What the figures plot: valid measured rows, selected and averaged over repeats.

Every figure uses only rows with ``status == "ok"`` and ``valid`` (when the table has the column);
spread is the sample standard deviation over repeats (0 for a single repeat).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llm_energy import UserError
from llm_energy.pipeline.cells import CELL_KEYS, DECODINGS, Variant, split_tensor_parallel

CELL = CELL_KEYS
DECODING_ORDER = list(DECODINGS)
MODEL_INFO = ["moe", "model_type", "n_parameters", "n_active_parameters"]


def usable(m: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows with status ok that passed validation, and the number of ok rows that failed it. (The padded
    batches of the energy model never get here: the paper's loader of measurements leaves them out.)"""
    if "status" in m:
        m = m[m["status"] == "ok"]
    n_invalid = 0
    if "valid" in m:
        valid = m["valid"].fillna(False).astype(bool)
        n_invalid = int((~valid).sum())
        m = m[valid]
    return m, n_invalid


def tensor_parallel(m: pd.DataFrame) -> pd.Series:
    """Tensor-parallel size of each row: the ``tensor_parallel`` column, else the variant's ``-tpN``, else 1."""
    parsed = m["variant"].astype(str).map(lambda v: split_tensor_parallel(v)[1]).astype(float)
    if "tensor_parallel" in m:
        col = pd.to_numeric(m["tensor_parallel"], errors="coerce")
        parsed = col.fillna(parsed)
    return parsed.astype("int64")


def base_variant(variant: str) -> str:
    """The variant without its tensor-parallel suffix: ``vllm-cudagraph-tp4`` -> ``vllm-cudagraph``."""
    return split_tensor_parallel(variant)[0]


def is_online(variant: str) -> bool:
    """Whether a variant (as named in a measurement table) serves online; old names count as offline."""
    try:
        return Variant.parse(str(variant)).online
    except UserError:
        return False


def single_device_offline(m: pd.DataFrame) -> pd.DataFrame:
    """Rows of tensor-parallel-1, offline variants (the comparisons of Figures 2-5 and 10)."""
    if m.empty:
        return m
    keep = (tensor_parallel(m) == 1) & ~m["variant"].astype(str).map(is_online)
    return m[keep]


def at_fixed_shape(m: pd.DataFrame, fixed_input: int, fixed_output: int) -> pd.DataFrame:
    """Rows at the sweep's fixed shape (input ``fixed_input``, output ``fixed_output``), every batch size;
    a cell with no row there (one given its own ``shape`` in the config, e.g. prompt lookup on real
    text) gives the rows of its own batch shape: the (input, output) it measured at most batch sizes."""
    if m.empty:
        return m
    at = (m["input_len"] == fixed_input) & (m["output_len"] == fixed_output)
    parts = [m[at]]
    have_fixed = set(map(tuple, m.loc[at, CELL].itertuples(index=False)))
    for key, cell in m[~at].groupby(CELL, sort=False):
        if tuple(key) in have_fixed:
            continue
        sizes = cell.groupby(["input_len", "output_len"])["batch_size"].nunique()
        if sizes.max() < 2:
            continue
        best = sizes[sizes == sizes.max()].index.min()
        parts.append(cell[(cell["input_len"] == best[0]) & (cell["output_len"] == best[1])])
    return pd.concat(parts) if len(parts) > 1 else parts[0]



def decoding_order(names) -> list[str]:
    """Decoding strategies in the paper's order; unknown names after, alphabetically."""
    names = list(dict.fromkeys(str(n) for n in names))
    known = [d for d in DECODING_ORDER if d in names]
    return known + sorted(n for n in names if n not in known)


def batch_table(measurements: pd.DataFrame, fixed_input: int, fixed_output: int) -> pd.DataFrame:
    """Per cell and batch size at the fixed shape (or the cell's own, :func:`at_fixed_shape`): means and
    spreads over valid ok repeats.

    Columns: the cell keys, ``batch_size``, ``input_len``/``output_len`` (the shape), ``energy_source``,
    ``status`` (``ok``; or the recorded status, e.g. ``oom`` or ``unsupported``, for a batch size with
    no ok row, whose values are empty), ``energy_mean_j``/``energy_std_j`` (per batch),
    ``energy_per_token_mean_j``/``_std_j`` (energy per batch / (batch size x output length)),
    ``duration_mean_s``/``_std_s``,
    ``throughput_mean_tok_s``/``_std_tok_s``, ``n_repeats``.
    """
    cols = CELL + ["batch_size", "input_len", "output_len", "energy_source", "status", "energy_mean_j",
                   "energy_std_j", "energy_per_token_mean_j", "energy_per_token_std_j", "duration_mean_s",
                   "duration_std_s",
                   "throughput_mean_tok_s", "throughput_std_tok_s", "n_repeats"]
    if measurements.empty:
        return pd.DataFrame(columns=cols)
    shape = at_fixed_shape(measurements, fixed_input, fixed_output)
    ok, _ = usable(shape)
    ok = ok.assign(energy_source=ok["energy_source"].fillna("unknown"),
                   per_token=ok["energy_j"] / (ok["batch_size"] * ok["output_len"]))
    g = ok.groupby(CELL + ["batch_size", "input_len", "output_len", "energy_source"])
    out = g.agg(energy_mean_j=("energy_j", "mean"), energy_std_j=("energy_j", "std"),
                energy_per_token_mean_j=("per_token", "mean"), energy_per_token_std_j=("per_token", "std"),
                duration_mean_s=("duration_s", "mean"), duration_std_s=("duration_s", "std"),
                throughput_mean_tok_s=("throughput_tok_s", "mean"),
                throughput_std_tok_s=("throughput_tok_s", "std"),
                n_repeats=("energy_j", "count")).reset_index()
    for c in ("energy_std_j", "energy_per_token_std_j", "duration_std_s", "throughput_std_tok_s"):
        out[c] = out[c].fillna(0.0)
    out["status"] = "ok"
    # Batch sizes that did not run (out of memory, unsupported): a row with the status, no values.
    if "status" in shape:
        failed = shape[shape["status"] != "ok"]
        if not failed.empty:
            have = set(map(tuple, out[CELL + ["batch_size"]].itertuples(index=False)))
            rows = []
            for key, grp in failed.groupby(CELL + ["batch_size"]):
                if tuple(key) not in have:
                    rows.append({**dict(zip(CELL + ["batch_size"], key)), "input_len": grp["input_len"].iloc[0],
                                 "output_len": grp["output_len"].iloc[0],
                                 "energy_source": str(grp["energy_source"].dropna().iloc[0])
                                 if grp["energy_source"].notna().any() else "unknown",
                                 "status": "+".join(sorted(grp["status"].astype(str).unique())), "n_repeats": 0})
            if rows:
                out = pd.concat([out, pd.DataFrame(rows)], ignore_index=True)
    return out[cols].sort_values(CELL + ["batch_size"]).reset_index(drop=True)


def model_info(measurements: pd.DataFrame) -> pd.DataFrame:
    """Per model: ``moe``, ``model_type``, ``n_parameters``, ``n_active_parameters`` (empty where unknown)."""
    models = sorted(measurements["model"].dropna().unique()) if "model" in measurements else []
    rows = []
    for model in models:
        sub = measurements[measurements["model"] == model]
        row = {"model": model}
        for c in MODEL_INFO:
            vals = sub[c].dropna() if c in sub else pd.Series(dtype=object)
            row[c] = vals.iloc[0] if len(vals) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["model"] + MODEL_INFO)


def _params(n) -> str:
    if n is None or pd.isna(n):
        return ""
    n = float(n)
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def architecture_label(info: dict) -> str:
    """``dense`` / ``MoE`` / ``unknown``, from the ``moe`` column (or ``model_type`` naming experts)."""
    moe = info.get("moe")
    if moe is not None and not pd.isna(moe):
        return "MoE" if bool(moe) else "dense"
    mt = str(info.get("model_type") or "").lower()
    if mt and mt != "nan":
        return "MoE" if "moe" in mt or "mixtral" in mt else "dense"
    return "unknown"


def model_label(info: dict) -> str:
    """Legend label of a model: name, dense/MoE, active/total parameters where known."""
    arch = architecture_label(info)
    total, active = _params(info.get("n_parameters")), _params(info.get("n_active_parameters"))
    size = f"{active} active / {total}" if arch == "MoE" and active and total else total
    extra = ", ".join(p for p in (arch if arch != "unknown" else "", size) if p)
    return f"{info['model']} ({extra})" if extra else str(info["model"])
