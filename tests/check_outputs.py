"""Check the numbers a pipeline run wrote, not only that its files exist.

Used by the end-to-end test and by .ci/run: ``python tests/check_outputs.py <run folder>``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

# Overlays the run was given (``--configfile``), merged into ``config.yaml`` as Snakemake merges them.
_OVERLAYS: tuple[Path, ...] = ()


def run_config(root: Path) -> dict:
    """The run's config: ``config.yaml`` with the overlays of :func:`check` merged in, validated."""
    import yaml
    from snakemake.utils import update_config

    from llm_energy.pipeline.config import validate

    cfg = yaml.safe_load((root / "config.yaml").read_text()) or {}
    for overlay in _OVERLAYS:
        update_config(cfg, yaml.safe_load(Path(overlay).read_text()) or {})
    return validate(cfg)


def check(root: str | Path, configfiles: tuple[str | Path, ...] = ()) -> dict:
    """Assert the contracts between stages on a finished run (run with ``configfiles`` as its
    ``--configfile`` overlays, if any); return a few figures for the log."""
    global _OVERLAYS
    root = Path(root)
    _OVERLAYS = tuple(Path(c) for c in configfiles)
    seen = check_bins(root)
    cells = check_measurements(root)
    # Estimates (of the cells that measure the bin grid): equal the formula applied to the rows.
    grid_cells = {k: m for k, m in cells.items() if m["role"].str.contains("grid").any()}
    est = check_estimates(root, seen, cells, grid_cells)
    check_figures(root, pd.concat(cells.values(), ignore_index=True), est)
    errors = check_replay(root, len(run_config(root)["replay"]["workloads"]) * len(grid_cells))
    check_tables(root, seen)
    check_serving(root)
    fig7 = pd.read_csv(root / "paper/figures/fig7_binning_cdfs.csv")
    assert set(fig7["workload"]) == set(seen)
    # Binned lengths are never below real ones at any quantile.
    piv = fig7.pivot_table(index=["workload", "axis", "quantile"], columns="kind", values="tokens")
    assert (piv["binned"] >= piv["real"]).all()
    verdicts = check_findings(root, est)
    check_summary(root, seen)
    return {"workloads": seen, "cells": len(cells), "estimates": len(est), "replay_error_pct": errors,
            "findings": verdicts,
            "energy_kj": {f"{r.workload}/{r.variant}": round(r.energy_j / 1e3, 3) for r in est.itertuples()}}


def check_findings(root: Path, est: pd.DataFrame) -> dict[str, str]:
    """One row per finding of the paper, each with a verdict; a tested one has its value, an untested
    one names the cells that would test it; the Markdown page and the LaTeX table list the same rows."""
    from llm_energy.paper.findings import FINDINGS, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED

    f = pd.read_csv(root / "paper/findings.csv")
    assert set(f["finding"]) == {x.name for x in FINDINGS}
    assert set(f["verdict"]) <= {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE}
    # an inconclusive verdict names its interval and what the interval is made of
    inconclusive = f[f["verdict"] == INCONCLUSIVE]
    assert inconclusive["evidence"].str.contains("lands on both sides of the criterion").all()
    assert (inconclusive["our_noise"] > 0).all()
    assert (inconclusive["noise_basis"].fillna("").astype(str).str.len() > 0).all()
    tested = f[f["verdict"] != NOT_TESTABLE]
    assert tested["our_value"].notna().all() and tested["energy_source"].notna().all()
    assert f.loc[f["verdict"] == NOT_TESTABLE, "evidence"].str.contains("would be tested by").all()
    # Estimates have a hardware spec on any machine: the ideal finding is computed, and judged except on
    # the CPU estimate, whose ideal uses the estimate's own watts (above it by construction: said so).
    assert est["ideal_energy_j"].notna().all(), "an estimate without its ideal"
    ideal = f[f["finding"].str.startswith("Every stack uses more")]
    on_estimate = est["energy_source"].astype(str).str.contains("cpu-estimate").any()
    assert ((ideal["verdict"] == NOT_TESTABLE) == on_estimate).all(), ideal
    assert ideal["our_value"].notna().all()
    if on_estimate:
        assert ideal["evidence"].str.contains("by construction").all()
    md = (root / "paper/findings.md").read_text()
    assert all(name in md for name in f["finding"])
    assert (root / "paper/findings.tex").read_text().count("\\\\\n") == len(f) + 1
    return dict(zip(f["finding"], f["verdict"]))


def check_summary(root: Path, seen: dict) -> None:
    """The leaderboard holds each estimate's energy per request, and the summary page the verdict
    counts of findings.csv and a line for every workload with requests beyond the bin edges."""
    board = pd.read_csv(root / "paper/tables/leaderboard.csv")
    both = pd.read_parquet(root / "results/estimates/estimates.parquet")
    assert len(board) == len(both[KEYS].drop_duplicates())
    for method in ("binned", "model"):
        part = both[both["method"] == method][KEYS + ["energy_per_request_j"]].astype({k: str for k in KEYS})
        merged = board.astype({k: str for k in KEYS}).merge(part, on=KEYS, how="left", suffixes=("", "_est"))
        assert _close(merged[f"{method}_energy_per_request_j"], merged["energy_per_request_j_est"]), method
    chosen = board.apply(lambda r: r[f"{r['method']}_energy_per_request_j"], axis=1)
    assert _close(board["energy_per_request_j"], chosen)
    text = (root / "paper/summary.md").read_text()
    counts = pd.read_csv(root / "paper/findings.csv")["verdict"].value_counts()
    for verdict, n in counts.items():
        assert f"{n} {verdict}" in text, verdict
    for workload in seen:
        s = json.loads((root / f"results/bins/{workload}.summary.json").read_text())
        said = f"{workload}: {s['n_excluded']:,} of {s['n_requests']:,} requests" in text
        assert said == (s["n_excluded"] > 0), workload


def check_bins(root: Path) -> dict[str, int]:
    """Profiles and bins: bin counts add up to the included requests, excluded counted. Returns the
    included requests of each workload."""
    seen = {}
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
        ratio = (dist["input_ratio"] * dist["input_tokens"]).sum() / dist["input_tokens"].sum()
        assert len(dist) < summary["n_included"] or math.isclose(ratio,
                            summary["input_inflation"], rel_tol=1e-9)
    assert seen, "no workload was profiled"
    return seen


def check_measurements(root: Path) -> dict[tuple, pd.DataFrame]:
    """Measurements: positive energy, exact output tokens, labelled source. Returns each cell's valid rows."""
    cells = {}
    for path in sorted((root / "results/checked").rglob("*.parquet")):
        m = pd.read_parquet(path)
        raw = pd.read_parquet(root / "results/measurements" / path.relative_to(root / "results/checked"))
        assert len(m) == len(raw) > 0, path
        assert (root / "results/measurements" / path.relative_to(root / "results/checked")).with_suffix("") \
            .with_suffix(".power.parquet").exists(), path
        assert (m["valid"] == (m["invalid_reason"] == "")).where(m["status"] == "ok", True).all(), path
        ok = m[m["status"] == "ok"]
        assert ok["energy_source"].isin(["nvml", "rapl", "cpu-estimate"]).all(), path
        assert ok["energy_source"].nunique() == 1, path  # one meter per cell, invalid rows too
        # A cell may have no valid row (every repeat pair spread beyond validation.max_cv: the
        # validation's verdict, which the findings and figures show); its valid rows are checked.
        m = ok[ok["valid"]]
        assert (m["energy_j"] > 0).all(), f"{path}: non-positive energy"
        assert (m["output_tokens"] == m["output_len"] * m["batch_size"]).all(), f"{path}: wrong token count"
        hw, model, variant = path.parts[-4:-1]
        cells[(hw, model, variant, path.stem)] = m
    assert cells, "no measurement"
    return cells


def check_estimates(root: Path, seen: dict, cells: dict, grid_cells: dict) -> pd.DataFrame:
    """Estimates equal the formula applied to the grid cells' rows; Figure 1, the savings and Table 4
    hold them. Returns the estimates."""
    both = pd.read_parquet(root / "results/estimates/estimates.parquet")
    assert set(both["method"]) == {"binned", "model"}
    # The model estimates every (workload, grid cell); the binned method leaves a cell out of a
    # workload when a bin it needs has no valid measurement, and says so in left_out.csv.
    assert (both["method"] == "model").sum() == len(seen) * len(grid_cells)
    est = both.query("method == 'binned'")
    left = pd.read_csv(root / "results/estimates/left_out.csv")
    assert left["reason"].str.len().gt(0).all()
    assert len(est) + len(left) == len(seen) * len(grid_cells)
    assert not set(zip(est["workload"], est["variant"])) & set(zip(left["workload"], left["variant"]))
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
    check_carbon(root, both)
    check_fig1(root, both)
    # Savings: one row per workload for the default comparison, from the two stacks' estimates.
    sav = pd.read_parquet(root / "results/estimates/savings.parquet")
    for s in sav.itertuples():
        e = est.set_index(["workload", "variant"])["energy_j"]
        assert math.isclose(s.saving_pct, 100 * (1 - e[(s.workload, s.optimized)] / e[(s.workload, s.baseline)]))
    check_table4(root, both, sav)
    return est


KEYS = ["workload", "hardware", "model", "variant", "decoding"]


def _close(got, expected) -> bool:
    """Equal within 1e-9 relative (and 1e-12 absolute), both NaN counting as equal."""
    got, expected = pd.Series(got, dtype=float).to_numpy(), pd.Series(expected, dtype=float).to_numpy()
    return bool(((abs(got - expected) <= 1e-12 + 1e-9 * abs(expected)) | (pd.isna(got) & pd.isna(expected))).all())


def check_carbon(root: Path, both: pd.DataFrame) -> None:
    """Facility kWh = energy x PUE, kgCO2e = kWh x intensity, cost = kWh x price, per million requests."""
    carbon = run_config(root)["carbon"]
    kwh = both["energy_j"] * carbon["pue"] / 3.6e6
    assert _close(both["facility_energy_kwh"], kwh)
    if not carbon["intensity_file"]:
        assert (both["grid_intensity_g_per_kwh"] == carbon["grid_intensity_g_per_kwh"]).all()
    co2 = kwh * both["grid_intensity_g_per_kwh"] / 1000
    assert _close(both["co2e_kg"], co2) and _close(both["cost"], kwh * carbon["price_per_kwh"])
    ok = both["n_included"] > 0
    assert _close(both.loc[ok, "co2e_kg_per_million_requests"], co2[ok] / both.loc[ok, "n_included"] * 1e6)
    assert (both["currency"] == carbon["currency"]).all()


def check_fig1(root: Path, both: pd.DataFrame) -> None:
    """Figure 1's data: both methods' estimates, each bar sqrt(repeat std^2 + systematic^2), and a
    stack without replay says its systematic error is unknown."""
    fig1 = pd.read_csv(root / "paper/figures/fig1_workload_energy.csv")
    for method in ("binned", "model"):
        plotted = fig1.loc[fig1["method"] == method, "energy_j"].dropna()
        assert sorted(plotted.round(6)) == sorted(both.loc[both["method"] == method, "energy_j"].dropna().round(6))
    bars = fig1[fig1["method"] != "ideal"]
    assert (bars["error_basis"].fillna("").str.len() > 0).all()
    known = bars["systematic_error_pct"].notna()
    err = (bars["energy_std_j"].fillna(0) ** 2 + (bars["systematic_error_pct"] / 100 * bars["energy_j"]) ** 2) ** 0.5
    assert _close(bars.loc[known, "error_j"], err[known])
    assert bars.loc[~known, "error_basis"].str.contains("systematic error unknown").all()
    assert _close(bars["co2e_kg"].isna(), bars["energy_j"].isna())  # every estimate has its carbon


def check_table4(root: Path, both: pd.DataFrame, sav: pd.DataFrame) -> None:
    """Table 4's data, row for row: each stack's binned and model estimates, systematic errors, carbon
    and the savings."""
    t4 = pd.read_csv(root / "paper/tables/table4_estimates.csv")
    assert len(t4) == len(both[KEYS].drop_duplicates())
    t4 = t4.set_index(KEYS)
    for method in ("binned", "model"):
        e = both[both["method"] == method].set_index(KEYS)
        got = t4.loc[e.index]
        for col in ("energy_j", "co2e_kg", "cost_per_million_requests"):
            assert _close(got[f"{method}_{col}"], e[col]), (method, col)
        assert (got[f"{method}_systematic_error_pct"].isna() == e["systematic_error_pct"].isna()).all(), method
    for s in sav.itertuples():
        row = t4.loc[(s.workload, s.hardware, s.model, s.optimized, s.decoding)]
        assert math.isclose(row["binned_saving_pct"], s.saving_pct, rel_tol=1e-9)
        assert not pd.isna(row["model_saving_pct"]) or both.query("method == 'model'")["energy_j"].isna().any()


def check_replay(root: Path, n_expected: int) -> dict[str, float]:
    """Replay validation: two independent numbers per workload and stack, and the error between them
    (``n_expected`` rows: workloads x grid cells). Returns the error per workload and stack."""
    val_files = sorted((root / "results/validation").rglob("*.parquet"))
    if not val_files:
        return {}
    val = pd.concat([pd.read_parquet(p) for p in val_files], ignore_index=True)
    assert len(val) == n_expected
    assert (val["replay_energy_j"] > 0).all() and (val["n_replay_runs"] >= 2).all()
    assert (val["replay_tokens_generated"] >= val["replay_tokens_requested"]).all()
    # A method that cannot estimate a sample says why instead of leaving a silent NaN.
    binned = val["estimate_energy_j"].notna()
    assert (val.loc[~binned, "estimate_note"].str.len() > 0).all()
    assert (val.loc[binned, "estimate_energy_j"] > 0).all()
    assert val["model_estimate_energy_j"].notna().all() or (val["model_note"].str.len() > 0).all()
    for est, err in (("estimate_energy_j", "error_pct"), ("model_estimate_energy_j", "model_error_pct")):
        ok = val[est].notna()
        assert ((100 * (val.loc[ok, est] / val.loc[ok, "replay_energy_j"] - 1) - val.loc[ok, err]).abs() < 1e-9).all()
    # The control points: measured again in every replay job (the config asks for some), so the drift of the
    # meter between the grid job and the replay job is a number, and the adjusted error follows from it.
    controlled = val["n_control_points"] > 0
    assert val.loc[controlled, "meter_drift_pct"].notna().all() and val.loc[~controlled, "meter_drift_pct"].isna().all()
    # One replay job per (cell, workload): with serpentine repeats its control points are measured half
    # before the replay and half after (the level after is a number); with consecutive ones, before only.
    assert val.loc[~controlled, "meter_drift_end_pct"].isna().all()
    bracketed = run_config(root)["measurement"]["repeat_order"] == "serpentine"
    assert val.loc[controlled, "meter_drift_end_pct"].notna().all() if bracketed else \
        val["meter_drift_end_pct"].isna().all()
    # Each phase's drift too (the control points' prefill windows), and the phase-corrected model error
    # follows from the model's prefill and decode parts: recomputed here.
    assert val.loc[controlled, ["meter_drift_prefill_pct", "meter_drift_decode_pct"]].notna().all().all()
    modelled = controlled & val["model_estimate_energy_j"].notna()
    c = val[modelled]
    phased = (c["model_prefill_energy_j"] * (1 + c["meter_drift_prefill_pct"] / 100)
              + c["model_decode_energy_j"] * (1 + c["meter_drift_decode_pct"] / 100))
    assert ((100 * (phased / c["replay_energy_j"] - 1) - c["model_error_phase_pct"]).abs() < 1e-9).all()
    # The model of the grid job at its steady level (the reference kernel is read at every visit on the
    # CPU meter): a number wherever the raw model and the control points are, and its error follows
    # from its estimate.
    steady = modelled & val["energy_source"].eq("cpu-estimate")
    assert (val.loc[steady, "steady_note"] == "").all(), val.loc[steady, "steady_note"].tolist()
    c = val[steady]
    assert c[["model_estimate_steady_j", "meter_drift_steady_pct"]].notna().all().all()
    assert ((100 * (c["model_estimate_steady_j"] / c["replay_energy_j"] - 1) - c["model_error_steady_pct"]).abs()
            < 1e-9).all()
    c = val[controlled]
    assert ((c["control_ratio_min_pct"] <= c["meter_drift_pct"] + 1e-9)
            & (c["meter_drift_pct"] <= c["control_ratio_max_pct"] + 1e-9)).all()
    # ... and they are the grid shapes that carry most of that workload's replay energy, recomputed here from
    # the cell's checked grid and the replayed requests.
    from llm_energy.estimates.replay import control_points
    from llm_energy.modelling.serving import framework_of

    for path in sorted((root / "results/replay").rglob("*.parquet")):
        rep = pd.read_parquet(path).iloc[0]
        if "control_input_len" not in rep.index or not len(rep["control_input_len"]):
            continue
        cell = path.relative_to(root / "results/replay").parent
        grid = pd.read_parquet(root / "results/checked" / f"{cell}.parquet")
        sample = pd.DataFrame({"input_tokens": rep["input_tokens"], "output_tokens": rep["output_tokens"]})
        expect = control_points(grid, len(rep["control_input_len"]), int(rep["control_batch_size"]), sample,
                                framework_of(rep["variant"]))
        assert list(zip(rep["control_input_len"], rep["control_output_len"])) == expect, path
    fig = pd.read_csv(root / "paper/figures/fig_replay_validation.csv")
    for col in ("error_pct", "model_error_pct", "model_error_steady_pct"):
        assert sorted(fig[col].dropna().round(6)) == sorted(val[col].dropna().round(6)), col
    return {f"{r.workload}/{r.variant}": (round(r.error_pct, 1), round(r.model_error_pct, 1)) for r in val.itertuples()}


def check_tables(root: Path, seen: dict) -> None:
    """Every table of the registry is written (LaTeX with a caption, CSV); Tables 1-3 hold the traces,
    the tasks and the bins of the run."""
    from llm_energy.paper.registry import TABLES

    for name in TABLES:
        assert "\\caption{" in (root / f"paper/tables/{name}.tex").read_text(), name
        assert (root / f"paper/tables/{name}.csv").exists(), name
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


def check_serving(root: Path) -> None:
    """The rate sweep (results/serving/), when the run has one: Figure 9's rate rows and the frontier's
    points are its rows; ``on_front`` is the Pareto front recomputed here (no whole-window row of the
    workload is at most as slow and as costly, and better in one); the latency table's least energy per
    met target is the least among the whole-window rows that meet it, and no row meets a "not met" one."""
    files = sorted((root / "results/serving").rglob("*.parquet"))
    if not files:
        return
    rows = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    whole = rows[rows["status"] != "timeout"]
    fig9 = pd.read_csv(root / "paper/figures/fig9_online_offline.csv")
    rate = fig9[fig9["panel"] == "rate"]
    assert sorted(rate["online_energy_per_request_j"].round(9)) == sorted(rows["energy_per_request_j"].round(9))
    front = pd.read_csv(root / "paper/figures/fig_energy_latency_frontier.csv")
    assert len(front) == 2 * len(rows) and set(front["metric"]) == {"tpot_p90_s", "e2e_p90_s"}
    for r in front.itertuples():
        peers = whole[whole["workload"] == r.workload].dropna(subset=[r.metric, "energy_per_request_j"])
        lat, e = peers[r.metric], peers["energy_per_request_j"]
        dominated = ((lat <= r.latency_s) & (e <= r.energy_per_request_j)
                     & ((lat < r.latency_s) | (e < r.energy_per_request_j))).any()
        whole_window = r.status != "timeout" and not (pd.isna(r.latency_s) or pd.isna(r.energy_per_request_j))
        assert bool(r.on_front) == (whole_window and not dominated), r
    table = pd.read_csv(root / "paper/tables/table_latency_targets.csv")
    for t in table[table["result"].isin(["met", "not met"])].itertuples():
        peers = whole[whole["workload"] == t.workload].dropna(subset=["energy_per_request_j"])
        meet = peers[peers[t.target] <= t.limit]
        if t.result == "met":
            assert math.isclose(t.energy_per_request_j, meet["energy_per_request_j"].min(), rel_tol=1e-9), t
        else:
            assert meet.empty and math.isclose(t.best_latency, peers[t.target].min(), rel_tol=1e-9), t
    check_request_figure(root)


def check_request_figure(root: Path) -> None:
    """The per-request figure plots, per rate, every request with tokens in the steady window, and its
    energy shares add up to the rate's metered window energy."""
    paths = sorted((root / "results/requests").rglob("*.parquet"))
    if not paths:  # a sweep written without its per-request tables (e.g. by hand in a test)
        return
    reqs = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    serving = pd.concat([pd.read_parquet(p) for p in sorted((root / "results/serving").rglob("*.parquet"))],
                        ignore_index=True)
    shares = reqs.groupby("rate_per_s")["energy_share_j"].sum()
    for r in serving.itertuples():
        assert math.isclose(shares[r.rate_per_s], r.energy_j, rel_tol=1e-6), (r.rate_per_s, shares[r.rate_per_s])
    fig = pd.read_csv(root / "paper/figures/fig_request_energy.csv")
    cdf = fig[fig["panel"] == "energy_cdf"]
    plotted = reqs[(reqs["tokens_in_window"] > 0) & (reqs["energy_share_j"] > 0)]
    assert cdf.groupby("rate_per_s").size().to_dict() == plotted.groupby("rate_per_s").size().to_dict()
    assert (cdf.groupby("rate_per_s")["cdf"].max() == 1.0).all()


def _figures(root: Path) -> list[str]:
    """The figures the run's config makes (the registry: llm_energy.paper.registry)."""
    from llm_energy.paper.registry import FIGURES, enabled

    return enabled(FIGURES, run_config(root))


def _fixed_shape(root: Path) -> tuple[int, int]:
    m = run_config(root)["measurement"]
    return int(m["sweep_fixed_input"]), int(m["sweep_fixed_output"])


def _tp(variant: str) -> int:
    import re

    hit = re.search(r"-tp(\d+)$", variant)
    return int(hit.group(1)) if hit else 1


def check_prefill_decode(root: Path, greedy: pd.DataFrame, fo: int) -> None:
    """Figures 2 and 10: prefill / decode means of the greedy sweep rows of each framework."""
    for name, fw in (("fig2_prefill_decode", "vllm"), ("fig10_prefill_decode_transformers", "transformers")):
        csv = pd.read_csv(root / f"paper/figures/{name}.csv")
        rows = greedy[greedy["variant"].str.startswith(fw) & greedy["role"].str.contains("sweep")]
        # Cells that swept lengths (batch-only cells have a single shape).
        swept = {k for k, g in rows.groupby(["hardware", "model", "variant"])
                 if g["input_len"].nunique() > 1 or g["output_len"].nunique() > 1}
        rows = rows[[k in swept for k in zip(rows["hardware"], rows["model"], rows["variant"])]]
        tex = (root / f"paper/figures/{name}.tex").read_text()
        if rows.empty:
            assert csv["note"].iloc[0].startswith("no data") and "no data" in tex, name
            continue
        assert set(csv["panel"]) == {"prefill", "decode"} and (csv["n_repeats"] > 0).all(), name
        pre = rows[rows["output_len"] == fo].groupby(["model", "variant", "batch_size", "input_len"])[
            "prefill_energy_j"].mean()
        got = csv[csv["panel"] == "prefill"].set_index(["model", "variant", "batch_size", "x"])["energy_mean_j"]
        assert len(got) == len(pre) and ((got.sort_index() - pre.sort_index().to_numpy()).abs() < 1e-9).all(), name


def check_figures(root: Path, valid: pd.DataFrame, est: pd.DataFrame) -> None:
    """Every figure's files exist, and each CSV's numbers equal the checked measurement tables' valid
    rows (or the estimates), recomputed here; a figure without data says so in its CSV and caption."""
    figures = _figures(root)
    for name in figures:
        for ext in ("pdf", "png", "csv", "tex"):
            assert (root / f"paper/figures/{name}.{ext}").stat().st_size > 0, (name, ext)
        assert (root / f"paper/figures/{name}.pdf").read_bytes().startswith(b"%PDF"), name
        assert (root / f"paper/figures/{name}.png").read_bytes()[:4] == b"\x89PNG", name
        assert "\\caption{" in (root / f"paper/figures/{name}.tex").read_text(), name
    fi, fo = _fixed_shape(root)
    valid = valid[valid["role"].astype(str) != "padded"]  # the energy model's padded batches: in no figure
    tp1 = valid[(valid["variant"].map(_tp) == 1) & ~valid["variant"].str.contains("online")]
    check_prefill_decode(root, tp1[tp1["decoding"] == "greedy"], fo)
    # Figures 3-6: means per cell and batch size at the fixed shape, or at the cell's own (config `shape`)
    # for a cell with no point at the fixed one.
    keys = ["hardware", "model", "variant", "decoding", "batch_size", "input_len", "output_len"]
    mean = tp1.groupby(keys)["energy_j"].mean()
    at_fixed = set(map(tuple, tp1.loc[(tp1["input_len"] == fi) & (tp1["output_len"] == fo), keys[:4]]
                       .itertuples(index=False)))
    for name in ("fig3_decoding", "fig4_moe", "fig5_compile_cudagraphs"):
        csv = pd.read_csv(root / f"paper/figures/{name}.csv").dropna(subset=["energy_mean_j"])
        assert not csv.empty, name
        for r in csv.itertuples():
            cell = (r.hardware, r.model, r.variant, r.decoding)
            assert cell not in at_fixed or (r.input_len, r.output_len) == (fi, fo), (name, r)
            assert math.isclose(r.energy_mean_j, mean[(*cell, r.batch_size, r.input_len, r.output_len)],
                                rel_tol=1e-9), (name, r)
    fig3 = pd.read_csv(root / "paper/figures/fig3_decoding.csv")
    if valid["decoding"].nunique() == 1:
        assert fig3["note"].fillna("").str.contains("only one decoding strategy").any()
    for name, present in (("fig6_tensor_parallel", (valid["variant"].map(_tp) > 1).any()),
                          ("fig9_online_offline", valid["variant"].str.contains("online").any())):
        csv = pd.read_csv(root / f"paper/figures/{name}.csv")
        if not present:
            assert len(csv) == 1 and csv["note"].iloc[0].startswith("no data"), name
            assert "no data" in (root / f"paper/figures/{name}.tex").read_text(), name
    # Figure 8: energy per request of the task workloads, from the estimates.
    fig8 = pd.read_csv(root / "paper/figures/fig8_tasks.csv")
    if "energy_source" not in fig8:  # no task workload in the config: the figure says so
        assert fig8["note"].iloc[0].startswith("no data"), fig8
        fig8 = fig8.assign(energy_source="", energy_per_request_j=float("nan"))
    stacks = fig8[fig8["energy_source"] != "flops-ideal"].dropna(subset=["energy_per_request_j"])
    both = pd.read_parquet(root / "results/estimates/estimates.parquet")
    e = both.set_index(["workload", "hardware", "model", "variant", "decoding", "method"])
    for r in stacks.itertuples():
        row = e.loc[(r.workload, r.hardware, r.model, r.variant, r.decoding, r.method)]
        assert math.isclose(r.energy_per_request_j, row["energy_j"] / row["n_included"], rel_tol=1e-9)
        assert math.isclose(r.error_per_request_j, r.error_j / row["n_included"], rel_tol=1e-9) \
            or pd.isna(r.error_j)
    # The paper: every figure's fragment is input by main.tex, and the PDF's status line exists.
    main = (root / "paper/main.tex").read_text() if (root / "paper/main.tex").exists() else ""
    for name in figures:
        assert not main or f"figures/{name}.tex" in main, name
    if (root / "paper/main.pdf.txt").exists():
        status = (root / "paper/main.pdf.txt").read_text()
        assert status.startswith("paper/main.pdf built") == (root / "paper/main.pdf").exists()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Assert the contracts between stages on a finished run.")
    parser.add_argument("root", nargs="?", default=".", help="the run's folder")
    parser.add_argument("--configfile", nargs="*", default=[], help="the overlays the run was given")
    args = parser.parse_args()
    print(json.dumps(check(args.root, tuple(args.configfile)), indent=2))
