"""How far each workload estimate is from a metered replay, from a finished run.

    .venv/bin/python benchmarks/estimate_errors.py [RUN_DIR]     # default: the current folder

Prints (1) per cell and workload the binned estimate's and the energy model's error against the
replay (mean of its metered runs, whose spread is ``replay_cv``), from ``results/validation/``;
(2) per grid cell the energy model's leave-one-point-out error (median and max over its grid
points), from ``results/checked/``, for the model's form and for candidate forms beside it (each
with the padded-batch terms where the cell measured padded batches).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from llm_energy.modelling.energy_model import (
    DECODE_TERMS,
    DEFAULT_TERMS,
    PADDED_TERMS,
    ModelNotFittable,
    fit_cell,
    measured_points,
)

CANDIDATES = {
    "model (a + b·B·I + c·B·I²; d + e·n + f·ctx)": DEFAULT_TERMS,
    "+ per-sequence prefill (a1·B)": ("prefill_fixed", "prefill_seq", "prefill_token", "prefill_token_sq",
                                      *DECODE_TERMS),
    "no attention terms (c = f = 0)": ("prefill_fixed", "prefill_token", "decode_step", "decode_seq_step"),
}


def replay_table(run: Path) -> pd.DataFrame:
    """Binned vs model error per (cell, workload)."""
    files = sorted((run / "results/validation").rglob("*.parquet"))
    if not files:
        return pd.DataFrame()
    v = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    v["cell"] = v["hardware"] + "/" + v["model"] + "/" + v["variant"] + "/" + v["decoding"]
    cols = ["cell", "workload", "n_requests", "n_replay_runs", "replay_energy_j", "replay_cv", "estimate_energy_j",
            "error_pct", "model_estimate_energy_j", "model_error_pct"]
    return v[[c for c in cols if c in v]]


def loglinear_loo(points: pd.DataFrame) -> pd.Series:
    """Leave-one-out |error| of a log-space fit log E = k + p log I + q log O + r log B (for comparison)."""
    x = np.column_stack([np.ones(len(points)), *(np.log(points[c]) for c in ("input_len", "output_len",
                                                                             "batch_size"))])
    y = np.log(points["energy_j"].to_numpy())
    errs = []
    for k in range(len(points)):
        keep = np.arange(len(points)) != k
        coef, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
        errs.append(100 * (np.exp(x[k] @ coef) / np.exp(y[k]) - 1))
    return pd.Series(errs, index=points.index).abs()


def loo_table(run: Path) -> pd.DataFrame:
    """Per grid cell and candidate form: median and max |LOO error| over the grid points."""
    rows = []
    for path in sorted((run / "results/checked").rglob("*.parquet")):
        m = pd.read_parquet(path)
        if "role" not in m or not m["role"].astype(str).str.contains("grid").any():
            continue
        cell = "/".join(path.relative_to(run / "results/checked").with_suffix("").parts)
        points = measured_points(m)
        padded = PADDED_TERMS if points["padded"].any() else ()  # every form prices padded batches apart
        for form, terms in CANDIDATES.items():
            terms = (*terms, *padded)
            try:
                model = fit_cell(m, terms, name=cell)
            except ModelNotFittable as error:
                rows.append({"cell": cell, "form": form, "note": str(error)})
                continue
            rows.append({"cell": cell, "form": form, "n_points": model.n_points,
                         "loo_median_pct": model.loo_median_error_pct, "loo_max_pct": model.loo_max_error_pct})
        points = points[~points["padded"]].reset_index(drop=True)
        errs = loglinear_loo(points)[points["grid"].to_numpy()]
        rows.append({"cell": cell, "form": "log-space linear (k + p·logI + q·logO + r·logB)", "n_points": len(points),
                     "loo_median_pct": errs.median(), "loo_max_pct": errs.max()})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default=".", type=Path, help="a finished run's folder (holds results/)")
    args = ap.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_colwidth", 60)
    replays = replay_table(args.run)
    print("# Estimate vs metered replay (error %: positive = estimate higher)")
    print(replays.round(2).to_string(index=False) if len(replays) else "(no results/validation/ tables)")
    if len(replays):
        summary = replays.assign(binned_abs=replays["error_pct"].abs(), model_abs=replays["model_error_pct"].abs())
        print("\n# Largest |error| per cell")
        print(summary.groupby("cell")[["binned_abs", "model_abs", "replay_cv"]].max().round(2).to_string())
    print("\n# Energy model: leave-one-point-out |error| over grid points (%)")
    loo = loo_table(args.run)
    print(loo.round(2).to_string(index=False) if len(loo) else "(no grid cells in results/checked/)")


if __name__ == "__main__":
    main()
