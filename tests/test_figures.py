"""Each figure's CSV holds the numbers recomputed here from the tables it was drawn from, and a figure
with nothing to draw says so in its CSV and caption instead of failing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llm_energy import figures as F

FI, FO = 64, 8
BATCHES = [1, 2, 4]


def cell(variant: str, decoding: str = "greedy", model: str = "m", hardware: str = "hw-a", scale: float = 1.0,
         source: str = "nvml", seed: int = 0, **extra) -> pd.DataFrame:
    """A checked measurement table: the fixed shape at every batch size, plus a small controlled sweep,
    3 repeats each, with seeded noise, and one invalid row that every figure must leave out."""
    rng = np.random.default_rng(seed)
    rows = []
    points = [(FI, FO, b, "grid,sweep") for b in BATCHES] + [(256, FO, b, "sweep") for b in BATCHES] \
        + [(FI, 32, b, "sweep") for b in BATCHES]
    for i, o, b, role in points:
        for r in range(3):
            e = scale * (0.1 * b * (i / 64) ** 0.5 * (o / 8)) * rng.uniform(0.9, 1.1)
            d = e / 50.0 * rng.uniform(0.9, 1.1)
            rows.append({"hardware": hardware, "model": model, "variant": variant, "decoding": decoding,
                         "input_len": i, "output_len": o, "batch_size": b, "role": role, "repeat": r,
                         "status": "ok", "energy_j": e, "prefill_energy_j": 0.3 * e, "decode_energy_j": 0.7 * e,
                         "duration_s": d, "throughput_tok_s": b * o / d, "output_tokens": b * o,
                         "energy_source": source, "valid": True, "invalid_reason": "", **extra})
    rows.append({**rows[0], "repeat": 3, "energy_j": 1e6, "valid": False, "invalid_reason": "cv too high"})
    return pd.DataFrame(rows)


def failed(variant: str, batch: int, status: str, **kw) -> pd.DataFrame:
    base = cell(variant, **kw).iloc[:1].copy()
    return base.assign(batch_size=batch, status=status, energy_j=np.nan, valid=False, repeat=0)


def expected(m: pd.DataFrame, keys: list[str], col: str = "energy_j") -> pd.DataFrame:
    """Mean and sample std over valid ok repeats at the fixed shape, independently of the package."""
    ok = m[(m["status"] == "ok") & m["valid"] & (m["input_len"] == FI) & (m["output_len"] == FO)]
    return ok.groupby(keys)[col].agg(["mean", "std", "count"]).reset_index()


def files(folder, name: str) -> F.FigureFiles:
    """Where a figure goes in ``folder``: name.{pdf,png,csv,tex}, as in paper/figures/."""
    return F.FigureFiles.in_folder(folder, name)


def read(out, name) -> tuple[pd.DataFrame, str]:
    return pd.read_csv(out / f"{name}.csv"), (out / f"{name}.tex").read_text()


def assert_matches(csv: pd.DataFrame, exp: pd.DataFrame, keys: list[str], mean_col: str, std_col: str | None):
    got = csv.dropna(subset=[mean_col]).set_index(keys).sort_index()
    exp = exp.set_index(keys).sort_index()
    assert len(got) == len(exp)
    np.testing.assert_allclose(got[mean_col].to_numpy(), exp["mean"].to_numpy(), rtol=1e-9)
    if std_col:
        np.testing.assert_allclose(got[std_col].to_numpy(), exp["std"].fillna(0).to_numpy(), rtol=1e-9)


def assert_files(out, name):
    for ext in ("pdf", "png", "csv", "tex"):
        assert (out / f"{name}.{ext}").stat().st_size > 0, ext
    assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_fig3_decoding_strategies(tmp_path):
    m = pd.concat([cell("vllm-eager", d, scale=s, seed=k, source="cpu-estimate") for k, (d, s) in
                   enumerate([("greedy", 1.0), ("beam", 1.4), ("speculative", 0.8)])]
                  + [cell("transformers-eager", "greedy", seed=5), cell("transformers-eager", "speculative", seed=6)]
                  + [failed("transformers-eager", 2, "unsupported", decoding="speculative")], ignore_index=True)
    m = m[~((m["variant"] == "transformers-eager") & (m["decoding"] == "speculative") & (m["batch_size"] > 1)
            & (m["status"] == "ok"))]
    F.fig_decoding(m, FI, FO, files(tmp_path, "fig3_decoding"))
    assert_files(tmp_path, "fig3_decoding")
    csv, tex = read(tmp_path, "fig3_decoding")
    keys = ["variant", "decoding", "batch_size"]
    assert_matches(csv, expected(m, keys), keys, "energy_mean_j", "energy_std_j")
    ok = m[(m["status"] == "ok") & m["valid"] & (m["input_len"] == FI) & (m["output_len"] == FO)]
    per_token = expected(ok.assign(t=ok["energy_j"] / (ok["batch_size"] * ok["output_len"])), keys, "t")
    assert_matches(csv, per_token, keys, "energy_per_token_mean_j", "energy_per_token_std_j")
    # Beam search against greedy at the same batch size.
    e = expected(m, keys).set_index(keys)["mean"]
    row = csv[(csv["decoding"] == "beam") & (csv["batch_size"] == 4)].iloc[0]
    assert math.isclose(row["vs_greedy_pct"], 100 * (e[("vllm-eager", "beam", 4)] / e[("vllm-eager", "greedy", 4)] - 1))
    # The unsupported point is kept with its status and no value, and named in the caption.
    bad = csv[csv["status"] == "unsupported"]
    assert len(bad) == 1 and bad["energy_mean_j"].isna().all() and int(bad["batch_size"].iloc[0]) == 2
    assert "unsupported" in tex and "cpu-estimate" in tex and "hw-a" in tex


def test_fig3_single_strategy_says_so(tmp_path):
    F.fig_decoding(cell("vllm-eager"), FI, FO, files(tmp_path, "fig3_decoding"))
    csv, tex = read(tmp_path, "fig3_decoding")
    assert csv["note"].fillna("").str.contains("only one decoding strategy").any()
    assert "Only one decoding strategy" in tex


def test_fig4_dense_vs_moe(tmp_path):
    dense = cell("vllm-eager", model="olmo-1b", moe=False, model_type="olmo", n_parameters=1.2e9,
                 n_active_parameters=1.2e9)
    moe = cell("vllm-eager", model="olmoe", scale=1.5, seed=2, moe=True, model_type="olmoe", n_parameters=6.9e9,
               n_active_parameters=1.3e9)
    m = pd.concat([dense, moe], ignore_index=True)
    F.fig_moe(m, FI, FO, files(tmp_path, "fig4_moe"))
    csv, tex = read(tmp_path, "fig4_moe")
    keys = ["model", "batch_size"]
    assert_matches(csv, expected(m, keys), keys, "energy_mean_j", "energy_std_j")
    assert_matches(csv, expected(m, keys, "duration_s"), keys, "duration_mean_s", "duration_std_s")
    arch = csv.dropna(subset=["model"]).groupby("model")["architecture"].first()
    assert arch["olmoe"] == "MoE" and arch["olmo-1b"] == "dense"
    assert csv["note"].isna().all()


def test_fig4_without_model_columns_falls_back_to_names(tmp_path):
    F.fig_moe(cell("vllm-eager"), FI, FO, files(tmp_path, "fig4_moe"))
    csv, tex = read(tmp_path, "fig4_moe")
    assert (csv.dropna(subset=["model"])["architecture"] == "unknown").all()
    assert csv["note"].fillna("").str.contains("architecture unknown").any() and "Architecture unknown" in tex


def test_fig5_compile_and_cuda_graphs(tmp_path):
    m = pd.concat([cell("transformers-eager"), cell("transformers-compile", scale=0.9, seed=1),
                   cell("vllm-eager", seed=2), failed("transformers-eager", 8, "oom")], ignore_index=True)
    F.fig_compile_graphs(m, FI, FO, files(tmp_path, "fig5_compile_cudagraphs"))
    csv, tex = read(tmp_path, "fig5_compile_cudagraphs")
    keys = ["variant", "batch_size"]
    assert_matches(csv, expected(m, keys), keys, "energy_mean_j", "energy_std_j")
    assert_matches(csv, expected(m, keys, "throughput_tok_s"), keys, "throughput_mean_tok_s", "throughput_std_tok_s")
    plotted = csv.dropna(subset=["energy_mean_j"])
    assert (plotted["max_batch_fit"] == 4).all()
    oom = csv[csv["status"] == "oom"]
    assert len(oom) == 1 and int(oom["batch_size"].iloc[0]) == 8 and oom["variant"].iloc[0] == "transformers-eager"
    e = expected(m, keys).set_index(keys)["mean"]
    on = plotted[(plotted["variant"] == "transformers-compile") & (plotted["batch_size"] == 2)].iloc[0]
    assert math.isclose(on["vs_off_energy_pct"],
                        100 * (e[("transformers-compile", 2)] / e[("transformers-eager", 2)] - 1))
    # vllm-cudagraph was not measured: said in the CSV and the caption.
    notes = csv[csv["note"].fillna("") != ""]
    assert list(notes["variant"]) == ["vllm-cudagraph"] and "vllm-cudagraph" in tex
    assert "largest batch that ran" in tex and "4" in tex


def test_fig6_tensor_parallel(tmp_path):
    m = pd.concat([cell("vllm-eager"), cell("vllm-eager-tp2", scale=1.3, seed=1),
                   cell("vllm-cudagraph-tp4", scale=1.6, seed=2, tensor_parallel=4),
                   cell("vllm-cudagraph", seed=3, tensor_parallel=1)], ignore_index=True)
    F.fig_tensor_parallel(m, FI, FO, files(tmp_path, "fig6_tensor_parallel"))
    csv, tex = read(tmp_path, "fig6_tensor_parallel")
    keys = ["variant", "batch_size"]
    assert_matches(csv, expected(m, keys), keys, "energy_mean_j", "energy_std_j")
    assert_matches(csv, expected(m, keys, "duration_s"), keys, "duration_mean_s", "duration_std_s")
    tp = csv.dropna(subset=["variant"]).groupby("variant")["tensor_parallel"].first()
    assert tp.to_dict() == {"vllm-eager": 1, "vllm-eager-tp2": 2, "vllm-cudagraph": 1, "vllm-cudagraph-tp4": 4}
    e = expected(m, keys).set_index(keys)["mean"]
    row = csv[(csv["variant"] == "vllm-eager-tp2") & (csv["batch_size"] == 1)].iloc[0]
    assert math.isclose(row["vs_tp1_energy_pct"], 100 * (e[("vllm-eager-tp2", 1)] / e[("vllm-eager", 1)] - 1))


def test_fig6_without_tp_cells_says_no_data(tmp_path):
    F.fig_tensor_parallel(cell("vllm-eager"), FI, FO, files(tmp_path, "fig6_tensor_parallel"))
    assert_files(tmp_path, "fig6_tensor_parallel")
    csv, tex = read(tmp_path, "fig6_tensor_parallel")
    assert len(csv) == 1 and csv["note"].iloc[0].startswith("no data")
    assert "no data" in tex and "tensor-parallel" in tex


def test_fig9_online_vs_offline(tmp_path):
    m = pd.concat([cell("vllm-eager"), cell("vllm-online", scale=0.95, seed=1)], ignore_index=True)
    F.fig_online(m, FI, FO, files(tmp_path, "fig9_online_offline"))
    csv, tex = read(tmp_path, "fig9_online_offline")
    e = expected(m, ["variant", "batch_size"]).set_index(["variant", "batch_size"])
    for r in csv.itertuples():
        on, off = e.loc[("vllm-online", r.batch_size)], e.loc[("vllm-eager", r.batch_size)]
        assert math.isclose(r.reduction_pct, 100 * (1 - on["mean"] / off["mean"]), rel_tol=1e-9)
        rel = math.hypot(on["std"] / on["mean"], off["std"] / off["mean"])
        assert math.isclose(r.reduction_std_pct, 100 * on["mean"] / off["mean"] * rel, rel_tol=1e-9)
    assert sorted(csv["batch_size"]) == BATCHES


def test_fig9_without_online_cell_says_no_data(tmp_path):
    F.fig_online(cell("vllm-eager"), FI, FO, files(tmp_path, "fig9_online_offline"))
    csv, tex = read(tmp_path, "fig9_online_offline")
    assert csv["note"].iloc[0].startswith("no data") and "no data" in tex


@pytest.mark.parametrize("framework,name", [("vllm", "fig2_prefill_decode"),
                                            ("transformers", "fig10_prefill_decode_transformers")])
def test_fig2_and_fig10_prefill_decode(tmp_path, framework, name):
    m = pd.concat([cell("vllm-eager"), cell("transformers-eager", seed=1, source="cpu-estimate")],
                  ignore_index=True)
    F.fig_prefill_decode(m, FI, FO, files(tmp_path, name), framework=framework)
    csv, tex = read(tmp_path, name)
    assert set(csv["variant"]) == {f"{framework}-eager"}
    ok = m[m["status"].eq("ok") & m["valid"] & m["variant"].str.startswith(framework)]
    pre = ok[ok["output_len"] == FO].groupby(["batch_size", "input_len"])["prefill_energy_j"].agg(["mean", "std"])
    dec = ok[ok["input_len"] == FI].groupby(["batch_size", "output_len"])["decode_energy_j"].agg(["mean", "std"])
    for panel, exp in (("prefill", pre), ("decode", dec)):
        got = csv[csv["panel"] == panel].set_index(["batch_size", "x"]).sort_index()
        np.testing.assert_allclose(got["energy_mean_j"], exp.sort_index()["mean"], rtol=1e-9)
        np.testing.assert_allclose(got["energy_std_j"], exp.sort_index()["std"], rtol=1e-9)
    assert ("cpu-estimate" in tex) == (framework == "transformers")


def test_fig10_without_transformers_says_no_data(tmp_path):
    F.fig_prefill_decode(cell("vllm-eager"), FI, FO, files(tmp_path, "fig10_prefill_decode_transformers"),
                         framework="transformers", number="10")
    csv, tex = read(tmp_path, "fig10_prefill_decode_transformers")
    assert csv["note"].iloc[0].startswith("no data") and "no data" in tex and "Figure 10 of the paper" in tex


def estimates_tables():
    rows, by_bin = [], []
    for w, n in (("imdb", 1000), ("wmt14", 900), ("burstgpt", 300)):
        for k, v in enumerate(("transformers-eager", "vllm-eager")):
            e = 100.0 * (k + 1) * n / 1000
            rows.append({"workload": w, "hardware": "hw-a", "model": "m", "variant": v, "decoding": "greedy",
                         "energy_j": e, "energy_source": "nvml", "n_included": n, "n_excluded": 3,
                         "ideal_energy_j": e / 10, "n_invalid_points": 0})
            for b in range(2):
                by_bin.append({"workload": w, "hardware": "hw-a", "model": "m", "variant": v, "decoding": "greedy",
                               "n_batches": 10.0 + b, "energy_batch_std_j": 0.5 * (b + 1)})
    return pd.DataFrame(rows), pd.DataFrame(by_bin)


def test_fig8_tasks_energy_per_request(tmp_path):
    est, by_bin = estimates_tables()
    F.fig_tasks(est, ["imdb", "wmt14"], files(tmp_path, "fig8_tasks"), by_bin)
    csv, tex = read(tmp_path, "fig8_tasks")
    stacks = csv[csv["variant"] != "ideal (FLOPs x TDP / peak)"]
    assert set(stacks["workload"]) == {"imdb", "wmt14"}
    exp = est.set_index(["workload", "variant"])
    for r in stacks.itertuples():
        assert math.isclose(r.energy_per_request_j, exp.loc[(r.workload, r.variant), "energy_j"]
                            / exp.loc[(r.workload, r.variant), "n_included"])
        # Spread of the estimate: bins independent, sqrt(sum (N/B x std)^2).
        b = by_bin[(by_bin["workload"] == r.workload) & (by_bin["variant"] == r.variant)]
        assert math.isclose(r.energy_std_j, math.sqrt(((b["n_batches"] * b["energy_batch_std_j"]) ** 2).sum()))
    ideal = csv[csv["variant"] == "ideal (FLOPs x TDP / peak)"].set_index("workload")
    assert math.isclose(ideal.loc["wmt14", "energy_per_request_j"], est[est["workload"] == "wmt14"]
                        ["ideal_energy_j"].iloc[0] / 900)
    assert "imdb: 1000" in tex and "hw-a" in tex


def test_fig8_without_tasks_says_no_data(tmp_path):
    est, _ = estimates_tables()
    F.fig_tasks(est, [], files(tmp_path, "fig8_tasks"))
    csv, tex = read(tmp_path, "fig8_tasks")
    assert csv["note"].iloc[0].startswith("no data") and "no data" in tex


def test_fig1_bars_equal_estimates_and_name_decoding(tmp_path):
    est, by_bin = estimates_tables()
    beam = est[est["variant"] == "vllm-eager"].assign(decoding="beam", energy_j=lambda d: d["energy_j"] * 2)
    est = pd.concat([est, beam],
                    ignore_index=True)
    F.fig_workload_energy(est, files(tmp_path, "fig1_workload_energy"), by_bin)
    csv, _ = read(tmp_path, "fig1_workload_energy")
    stacks = csv[csv["energy_source"] != "flops-ideal"]
    assert sorted(stacks["energy_j"]) == sorted(est["energy_j"])
    assert "vllm-eager / beam" in set(stacks["stack"])


def both_methods():
    """Binned and model estimates of two stacks on two workloads: vllm-eager replayed (systematic error
    known: 10 % binned, 30 % model), transformers-eager not (NaN, with its note), carbon columns given."""
    est, by_bin = estimates_tables()
    est = est[est["workload"].isin(["imdb", "burstgpt"])]
    known = est["variant"] == "vllm-eager"
    binned = est.assign(method="binned", systematic_error_pct=np.where(known, 10.0, np.nan),
                        systematic_error_note=np.where(known, "largest of 2 replayed workload(s)", "no replay here"))
    model = est.assign(method="model", energy_j=est["energy_j"] * np.where(known, 0.8, 0.9),
                       n_included=est["n_included"] + 2,
                       ideal_energy_j=est["ideal_energy_j"] * 0.9,
                       systematic_error_pct=np.where(known, 30.0, np.nan),
                       systematic_error_note=np.where(known, "largest of 2 replayed workload(s)", "no replay here"))
    both = pd.concat([binned, model], ignore_index=True)
    both["pct_above_ideal"] = 100 * (both["energy_j"] / both["ideal_energy_j"] - 1)
    both["pct_above_ideal_sparse"] = np.nan
    both["facility_energy_kwh"] = both["energy_j"] * 1.5 / 3.6e6
    both["co2e_kg"] = both["facility_energy_kwh"] * 0.4
    both["cost"] = both["facility_energy_kwh"] * 0.1
    for c in ("facility_energy_kwh", "co2e_kg", "cost"):
        both[f"{c}_per_million_requests"] = both[c] / both["n_included"] * 1e6
    both = both.assign(pue=1.5, grid_intensity_g_per_kwh=400.0, currency="EUR")
    return both, by_bin


def test_fig1_both_methods_with_repeat_spread_and_systematic_error(tmp_path):
    est, by_bin = both_methods()
    F.fig_workload_energy(est, files(tmp_path, "fig1_workload_energy"), by_bin)
    csv, tex = read(tmp_path, "fig1_workload_energy")
    bars = csv[csv["method"] != "ideal"].set_index(["workload", "variant", "method"])
    assert len(bars) == len(est) and set(bars.index.get_level_values("method")) == {"binned", "model"}
    assert (csv.loc[csv["method"] == "binned", "method_label"] == "binned (the paper's method)").all()
    for r in est.itertuples():
        row = bars.loc[(r.workload, r.variant, r.method)]
        assert math.isclose(row["energy_j"], r.energy_j) and math.isclose(row["co2e_kg"], r.co2e_kg)
        b = by_bin[(by_bin["workload"] == r.workload) & (by_bin["variant"] == r.variant)]
        std = math.sqrt(((b["n_batches"] * b["energy_batch_std_j"]) ** 2).sum()) if r.method == "binned" else 0.0
        sys_j = r.systematic_error_pct / 100 * r.energy_j if r.variant == "vllm-eager" else 0.0
        if r.method == "model" and r.variant == "transformers-eager":
            assert np.isnan(row["error_j"]) and row["error_basis"].startswith("no error bar")
        else:
            assert math.isclose(row["error_j"], math.hypot(std, sys_j)), (r, row["error_j"])
        if r.variant == "transformers-eager":  # no replay: the bar says so, never a silent NaN
            assert "systematic error unknown (no replay here)" in row["error_basis"]
    assert (bars.xs("binned", level="method").xs("vllm-eager", level="variant")["error_basis"]
            == "sqrt(repeat std^2 + systematic^2)").all()
    # One ideal per workload, the binned rows' (the paper's).
    ideal = csv[csv["method"] == "ideal"].set_index("workload")
    assert len(ideal) == 2 and (ideal["ideal_of"] == "binned").all()
    assert math.isclose(ideal.loc["imdb", "energy_j"], est.query("workload == 'imdb' and method == 'binned'")
                        ["ideal_energy_j"].iloc[0])
    assert "sigma_{rep}" in tex and "Systematic error unknown" in tex and "model transformers-eager" in tex


def test_fig8_per_request_of_each_method(tmp_path):
    est, by_bin = both_methods()
    F.fig_tasks(est, ["imdb"], files(tmp_path, "fig8_tasks"), by_bin)
    csv, tex = read(tmp_path, "fig8_tasks")
    model = csv[(csv["method"] == "model") & (csv["variant"] == "vllm-eager")].iloc[0]
    e = est.query("workload == 'imdb' and method == 'model' and variant == 'vllm-eager'").iloc[0]
    assert math.isclose(model["energy_per_request_j"], e["energy_j"] / 1002)  # the model's own request count
    assert math.isclose(model["error_per_request_j"], 0.3 * e["energy_j"] / 1002)
    assert set(csv["method"]) == {"ideal", "binned", "model"} and "imdb: 1000" in tex


def test_table4_both_methods_savings_and_carbon(tmp_path):
    from llm_energy.tables import TableFiles, table_estimates

    est, _ = both_methods()
    sav = pd.DataFrame([{"workload": w, "hardware": "hw-a", "model": "m", "decoding": "greedy",
                         "baseline": "transformers-eager", "optimized": "vllm-eager", "saving_pct": -100.0}
                        for w in ("imdb", "burstgpt")])
    out = TableFiles(tmp_path / "t4.tex", tmp_path / "t4.csv")
    table_estimates(est, sav, out)
    csv, tex = pd.read_csv(out.csv).set_index(["workload", "variant"]), out.tex.read_text()
    assert len(csv) == 4
    row = csv.loc[("imdb", "vllm-eager")]
    e = est.set_index(["workload", "variant", "method"])
    assert math.isclose(row["binned_energy_j"], e.loc[("imdb", "vllm-eager", "binned"), "energy_j"])
    assert math.isclose(row["model_energy_j"], e.loc[("imdb", "vllm-eager", "model"), "energy_j"])
    assert row["binned_systematic_error_pct"] == 10 and row["model_systematic_error_pct"] == 30
    assert math.isclose(row["binned_co2e_kg"], e.loc[("imdb", "vllm-eager", "binned"), "co2e_kg"])
    assert row["binned_saving_pct"] == -100.0
    model_saving = 100 * (1 - e.loc[("imdb", "vllm-eager", "model"), "energy_j"]
                          / e.loc[("imdb", "transformers-eager", "model"), "energy_j"])
    assert math.isclose(row["model_saving_pct"], model_saving)
    assert np.isnan(csv.loc[("imdb", "transformers-eager"), "model_systematic_error_pct"])
    # kJ +- systematic error (? without replay), binned / model percentages, the currency, one hardware named once.
    assert "0.2 $\\pm$ 10\\%" in tex and "0.16 $\\pm$ 30\\%" in tex and "0.09 $\\pm$ ?" in tex
    assert f"-100.0\\% / {model_saving:.1f}\\%" in tex and "cost (EUR)" in tex and "Hardware \\texttt{hw-a}" in tex
    assert tex.count("\\\\\n") == 5  # header + 4 rows


def test_replay_figure_shows_both_errors(tmp_path):
    val = pd.DataFrame([{"workload": w, "hardware": "hw-a", "model": "m", "variant": v, "decoding": "greedy",
                         "n_requests": 24, "error_pct": e, "model_error_pct": m, "energy_source": "nvml"}
                        for w, v, e, m in (("imdb", "vllm-eager", 12.0, -3.0), ("imdb", "transformers-eager", 40.0,
                                                                                 np.nan))])
    F.fig_replay_validation(val, files(tmp_path, "fig_replay_validation"))
    csv, tex = read(tmp_path, "fig_replay_validation")
    assert sorted(csv["error_pct"]) == [12.0, 40.0] and csv["model_error_pct"].isna().sum() == 1
    assert "Hollow: the paper's binned" in tex and "No bar: 1 estimate(s)" in tex


def test_captions_escape_latex(tmp_path):
    m = cell("vllm-eager", hardware="cpu_x", model="tiny_llama")
    F.fig_decoding(m, FI, FO, files(tmp_path, "fig3_decoding"))
    tex = (tmp_path / "fig3_decoding.tex").read_text()
    assert "cpu\\_x" in tex and "tiny\\_llama" in tex and "\\\\times" not in tex


# --- the registry: one entry per figure and table, each its own job ----------------------------------

def test_registry_names_each_output_once_and_its_function_takes_what_it_names():
    import inspect

    from llm_energy import paper

    assert not set(paper.FIGURES) & set(paper.TABLES)
    for name, out in {**paper.FIGURES, **paper.TABLES}.items():
        assert out.name == name and out.caption.strip(), name
        assert set(out.inputs) <= set(paper.INPUTS) and set(out.settings) <= set(paper.SETTINGS), name
        assert out.workloads in paper.WORKLOAD_KINDS, name
        # Every keyword it is called with is a parameter, and it needs no other.
        given = dict.fromkeys([*out.inputs, *out.settings, *out.options, "files"])
        sig = inspect.signature(out.resolve())
        sig.bind(**given)
        required = {p.name for p in sig.parameters.values() if p.default is inspect.Parameter.empty}
        assert required <= set(given), (name, required - set(given))


def test_replay_figure_only_when_replay_is_enabled():
    from llm_energy import paper

    on = paper.enabled(paper.FIGURES, {"replay": {"enabled": True}})
    off = paper.enabled(paper.FIGURES, {"replay": {"enabled": False}})
    assert on == off + ["fig_replay_validation"] and len(off) == 10
    assert off[0] == "fig1_workload_energy" and "fig10_prefill_decode_transformers" in off


def test_write_takes_the_paths_it_is_given(tmp_path):
    """A job writes exactly the four files Snakemake names, wherever they are, with the CSV a direct call writes."""
    from llm_energy import paper

    m = pd.concat([cell("vllm-eager"), cell("vllm-eager", "beam", scale=1.4, seed=1)], ignore_index=True)
    table = tmp_path / "in" / "checked.parquet"
    table.parent.mkdir()
    m.to_parquet(table, index=False)
    spread = F.FigureFiles(*(tmp_path / d / f"x.{ext}" for d, ext in
                             (("a", "pdf"), ("b", "png"), ("c", "csv"), ("d", "tex"))))
    settings = {"fixed_input": FI, "fixed_output": FO, "input_edges": [1], "output_edges": [1]}
    paper.write("fig3_decoding", {"measurements": [str(table)]}, settings, spread)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["a/x.pdf", "b/x.png", "c/x.csv", "d/x.tex", "in/checked.parquet"]
    F.fig_decoding(m, FI, FO, files(tmp_path / "direct", "fig3_decoding"))
    pd.testing.assert_frame_equal(pd.read_csv(spread.csv), pd.read_csv(tmp_path / "direct/fig3_decoding.csv"))


def test_tables_read_only_their_workloads(tmp_path):
    """Table 1 gets the traces' statistics, Table 2 the tasks' (the workflow passes only those), each
    written to its own .tex and .csv."""
    import json

    from llm_energy import paper
    from llm_energy.tables import TableFiles

    stat = {"n_requests": 3, "input_tokens": {"mean": 2.0, "std": 1.0, "median": 2, "p99": 3, "max": 3},
            "output_tokens": {"mean": 4.0, "std": 0.0, "median": 4, "p99": 4, "max": 4}}
    paths = []
    for w in ("burstgpt", "azure_code_2023"):
        paths.append(tmp_path / f"{w}.stats.json")
        paths[-1].write_text(json.dumps(stat))
    out = TableFiles(tmp_path / "t" / "one.tex", tmp_path / "u" / "one.csv")
    paper.write("table1_workloads", {"stats": [str(p) for p in paths]}, {}, out)
    csv = pd.read_csv(out.csv)
    assert list(csv["workload"]) == ["burstgpt", "azure_code_2023"] and (csv["n_requests"] == 3).all()
    assert "azure\\_code\\_2023" in out.tex.read_text() and paper.TABLES["table2_tasks"].workloads == "task"
