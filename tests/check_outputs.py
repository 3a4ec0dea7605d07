"""Check the numbers a pipeline run wrote, not only that its files exist.

Used by the end-to-end test and by .ci/run: ``python tests/check_outputs.py <run folder>``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd


def check(root: str | Path) -> dict:
    """Assert the contracts between stages on a finished run; return a few figures for the log."""
    root = Path(root)
    seen = {}
    # Profiles and bins: bin counts add up to the included requests, excluded counted.
    for stats_path in sorted((root / "results/profile").glob("*.stats.json")):
        w = stats_path.name.removesuffix(".stats.json")
        stats = json.loads(stats_path.read_text())
        prof = pd.read_parquet(root / f"results/profile/{w}.parquet")
        assert stats["n_requests"] == len(prof) > 0, w
        assert math.isclose(stats["input_tokens"]["mean"], prof["input_tokens"].mean()), w
        bins = pd.read_parquet(root / f"results/bins/{w}.parquet")
        summary = json.loads((root / f"results/bins/{w}.summary.json").read_text())
        top_in, top_out = summary["input_edges"][-1], summary["output_edges"][-1]
        inside = (prof["input_tokens"] <= top_in) & (prof["output_tokens"] <= top_out)
        assert bins["n_requests"].sum() == summary["n_included"] == inside.sum(), w
        assert summary["n_included"] + summary["n_excluded"] == stats["n_requests"], w
        seen[w] = summary["n_included"]
    assert seen, "no workload was profiled"
    # Measurements: positive energy, exact output tokens, labelled source.
    cells = {}
    for path in sorted((root / "results/measurements").rglob("*.parquet")):
        m = pd.read_parquet(path)
        assert len(m) > 0, path
        assert (m["energy_j"] > 0).all(), f"{path}: non-positive energy"
        assert (m["output_tokens"] == m["output_len"] * m["batch_size"]).all(), f"{path}: wrong token count"
        assert m["energy_source"].isin(["nvml", "rapl", "cpu-estimate"]).all(), path
        hw, model, variant = path.parts[-4:-1]
        cells[(hw, model, variant, path.stem)] = m
    assert cells, "no measurement"
    # Estimates: equal the formula applied to the measurement rows.
    est = pd.read_parquet(root / "results/estimates/estimates.parquet")
    assert len(est) == len(seen) * len(cells)
    for r in est.itertuples():
        m = cells[(r.hardware, r.model, r.variant, r.decoding)]
        bins = pd.read_parquet(root / f"results/bins/{r.workload}.parquet")
        at_b = m[m["batch_size"] == r.batch_size].groupby(["input_len", "output_len"])["energy_j"].mean()
        expected = sum(b.n_requests / r.batch_size * at_b[(b.input_bin, b.output_bin)] for b in bins.itertuples())
        assert math.isclose(r.energy_j, expected, rel_tol=1e-9), (r.workload, r.variant, r.energy_j, expected)
        assert r.n_included == seen[r.workload]
    # Figures: the plotted data beside each figure holds the estimates.
    fig1 = pd.read_csv(root / "paper/figures/fig1_workload_energy.csv")
    assert sorted(fig1["energy_j"].round(6)) == sorted(est["energy_j"].round(6))
    fig2 = pd.read_csv(root / "paper/figures/fig2_prefill_decode.csv")
    assert set(fig2["panel"]) == {"prefill", "decode"} and (fig2["n_repeats"] > 0).all()
    for name in ("fig1_workload_energy", "fig2_prefill_decode"):
        assert (root / f"paper/figures/{name}.pdf").read_bytes().startswith(b"%PDF"), name
        assert (root / f"paper/figures/{name}.png").read_bytes()[:4] == b"\x89PNG", name
    tex = (root / "paper/tables/table1_workloads.tex").read_text()
    assert all(w.replace("_", "\\_") in tex for w in seen)
    return {"workloads": seen, "cells": len(cells), "estimates": len(est),
            "energy_kj": {f"{r.workload}/{r.variant}": round(r.energy_j / 1e3, 3) for r in est.itertuples()}}


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1] if len(sys.argv) > 1 else "."), indent=2))
