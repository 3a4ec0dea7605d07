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
        dist = pd.read_csv(root / f"results/bins/{w}.distortion.csv")
        assert len(dist) <= summary["n_included"] and (dist[["input_ratio", "output_ratio"]] >= 1).all().all()
        assert len(dist) < summary["n_included"] or math.isclose((dist["input_ratio"] * dist["input_tokens"]).sum() / dist["input_tokens"].sum(),
                            summary["input_inflation"], rel_tol=1e-9)
    assert seen, "no workload was profiled"
    # Measurements: positive energy, exact output tokens, labelled source.
    cells = {}
    for path in sorted((root / "results/checked").rglob("*.parquet")):
        m = pd.read_parquet(path)
        raw = pd.read_parquet(root / "results/measurements" / path.relative_to(root / "results/checked"))
        assert len(m) == len(raw) > 0, path
        assert (root / "results/measurements" / path.relative_to(root / "results/checked")).with_suffix("") \
            .with_suffix(".power.parquet").exists(), path
        assert (m["valid"] == (m["invalid_reason"] == "")).where(m["status"] == "ok", True).all(), path
        m = m[(m["status"] == "ok") & m["valid"]]
        assert (m["energy_j"] > 0).all(), f"{path}: non-positive energy"
        assert (m["output_tokens"] == m["output_len"] * m["batch_size"]).all(), f"{path}: wrong token count"
        assert m["energy_source"].isin(["nvml", "rapl", "cpu-estimate"]).all(), path
        assert m["energy_source"].nunique() == 1, path
        hw, model, variant = path.parts[-4:-1]
        cells[(hw, model, variant, path.stem)] = m
    assert cells, "no measurement"
    # Estimates: equal the formula applied to the measurement rows.
    est = pd.read_parquet(root / "results/estimates/estimates.parquet")
    assert len(est) == len(seen) * len(cells)
    for r in est.itertuples():
        m = cells[(r.hardware, r.model, r.variant, r.decoding)]
        bins = pd.read_parquet(root / f"results/bins/{r.workload}.parquet")
        grid = m[m["role"].str.contains("grid")]
        at_b = grid.groupby(["input_len", "output_len"]).agg(e=("energy_j", "mean"), b=("batch_size", "first"))
        expected = sum(n.n_requests / at_b.loc[(n.input_bin, n.output_bin), "b"]
                       * at_b.loc[(n.input_bin, n.output_bin), "e"] for n in bins.itertuples())
        assert math.isclose(r.energy_j, expected, rel_tol=1e-9), (r.workload, r.variant, r.energy_j, expected)
        assert r.n_included == seen[r.workload]
        if not math.isnan(r.ideal_energy_j):
            assert r.ideal_energy_j > 0 and r.flops > 0
            assert math.isclose(r.pct_above_ideal, 100 * (r.energy_j / r.ideal_energy_j - 1))
    # Figures: the plotted data beside each figure holds the estimates.
    fig1 = pd.read_csv(root / "paper/figures/fig1_workload_energy.csv")
    measured = fig1[fig1["energy_source"] != "flops-ideal"]
    assert sorted(measured["energy_j"].round(6)) == sorted(est["energy_j"].round(6))
    # Savings: one row per workload for the default comparison, from the two stacks' estimates.
    sav = pd.read_parquet(root / "results/estimates/savings.parquet")
    for s in sav.itertuples():
        e = est.set_index(["workload", "variant"])["energy_j"]
        assert math.isclose(s.saving_pct, 100 * (1 - e[(s.workload, s.optimized)] / e[(s.workload, s.baseline)]))
    fig2 = pd.read_csv(root / "paper/figures/fig2_prefill_decode.csv")
    assert set(fig2["panel"]) == {"prefill", "decode"} and (fig2["n_repeats"] > 0).all()
    for name in ("fig1_workload_energy", "fig2_prefill_decode"):
        assert (root / f"paper/figures/{name}.pdf").read_bytes().startswith(b"%PDF"), name
        assert (root / f"paper/figures/{name}.png").read_bytes()[:4] == b"\x89PNG", name
    # Replay validation: two independent numbers per workload and stack, and the error between them.
    val_files = sorted((root / "results/validation").rglob("*.parquet"))
    if val_files:
        val = pd.concat([pd.read_parquet(p) for p in val_files], ignore_index=True)
        assert len(val) == len(seen) * len(cells)
        assert (val["replay_energy_j"] > 0).all() and (val["estimate_energy_j"] > 0).all()
        assert (val["replay_tokens_generated"] >= val["replay_tokens_requested"]).all()
        assert ((100 * (val["estimate_energy_j"] / val["replay_energy_j"] - 1) - val["error_pct"]).abs() < 1e-9).all()
        fig = pd.read_csv(root / "paper/figures/fig_replay_validation.csv")
        assert sorted(fig["error_pct"].round(6)) == sorted(val["error_pct"].round(6))
    kinds = {w: json.loads((root / f"results/profile/{w}.stats.json").read_text()).get("n_examples_available")
             for w in seen}
    traces = [w for w, k in kinds.items() if k is None]
    tasks = [w for w, k in kinds.items() if k is not None]
    t1 = pd.read_csv(root / "paper/tables/table1_workloads.csv") if traces else pd.DataFrame({"workload": []})
    assert sorted(t1["workload"]) == sorted(traces)
    tex = (root / "paper/tables/table1_workloads.tex").read_text()
    assert all(w.replace("_", "\\_") in tex for w in traces)
    if tasks:
        t2 = pd.read_csv(root / "paper/tables/table2_tasks.csv")
        assert sorted(t2["task"]) == sorted(tasks)
    t3 = pd.read_csv(root / "paper/tables/table3_bins.csv").set_index("workload")
    for w, n in seen.items():
        assert t3.loc[w, "n_included"] == n and t3.loc[w, "input_inflation"] >= 1.0
    fig7 = pd.read_csv(root / "paper/figures/fig7_binning_cdfs.csv")
    assert set(fig7["workload"]) == set(seen)
    # Binned lengths are never below real ones at any quantile.
    piv = fig7.pivot_table(index=["workload", "axis", "quantile"], columns="kind", values="tokens")
    assert (piv["binned"] >= piv["real"]).all()
    errors = {f"{r.workload}/{r.variant}": round(r.error_pct, 1) for r in val.itertuples()} if val_files else {}
    return {"workloads": seen, "cells": len(cells), "estimates": len(est), "replay_error_pct": errors,
            "energy_kj": {f"{r.workload}/{r.variant}": round(r.energy_j / 1e3, 3) for r in est.itertuples()}}


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1] if len(sys.argv) > 1 else "."), indent=2))
