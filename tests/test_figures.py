"""Each figure's CSV holds the numbers recomputed here from the tables it was drawn from, and a figure
with nothing to draw says so in its CSV and caption instead of failing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llm_energy.paper import figures as F
from llm_energy.paper.figures.frontier import fig_energy_latency_frontier

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


def test_fig5_names_vllm_cudagraph_for_what_it_is_on_a_cpu(tmp_path):
    m = pd.concat([cell(v, hardware=hw, seed=k) for k, (v, hw) in enumerate(
        [("vllm-eager", "cpu-x"), ("vllm-cudagraph", "cpu-x"), ("vllm-eager", "h100"), ("vllm-cudagraph", "h100")])],
        ignore_index=True)
    F.fig_compile_graphs(m, FI, FO, files(tmp_path, "fig5_compile_cudagraphs"))
    csv, tex = read(tmp_path, "fig5_compile_cudagraphs")
    opt = csv.dropna(subset=["energy_mean_j"]).groupby("hardware")["optimization"].unique()
    assert list(opt["cpu-x"]) == ["vLLM compiled (no CUDA graphs on a CPU)"] and list(opt["h100"]) == ["CUDA graphs"]
    assert "On a CPU, vllm-cudagraph is vLLM's compiled path (torch.compile), not CUDA graphs" in tex


def test_a_zero_line_label_sits_above_the_line_with_room_when_every_value_is_negative():
    import matplotlib.pyplot as plt

    from llm_energy.paper.figures.batch import zero_label

    fig, ax = plt.subplots()
    ax.plot([1, 4], [-80.0, -320.0])
    ax.axhline(0)
    label = zero_label(ax, "above 0: online uses less energy")
    lo, hi = ax.get_ylim()
    assert hi > 0.1 * (hi - lo) and label.xy[1] == 0.0 and label.get_va() == "bottom"
    plt.close(fig)


def test_a_batch_that_did_not_run_is_marked_as_such_not_as_a_point(tmp_path, monkeypatch):
    from llm_energy.paper.figures import batch

    seen = {"lines": [], "words": []}
    real_axvline, real_annotate = batch.plt.Axes.axvline, batch.plt.Axes.annotate

    def axvline(ax, x=0, *a, **kw):
        seen["lines"].append(x)
        return real_axvline(ax, x, *a, **kw)

    def annotate(ax, text, *a, **kw):
        seen["words"].append(text)
        return real_annotate(ax, text, *a, **kw)

    monkeypatch.setattr(batch.plt.Axes, "axvline", axvline)
    monkeypatch.setattr(batch.plt.Axes, "annotate", annotate)
    m = pd.concat([cell("transformers-eager"), cell("transformers-compile", seed=1),
                   failed("transformers-eager", 8, "oom")], ignore_index=True)
    F.fig_compile_graphs(m, FI, FO, files(tmp_path, "fig5_compile_cudagraphs"))
    assert 8 in seen["lines"] and "did not run" in seen["words"]


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
    # Without a rate sweep the batch panel stays, and the rate panels say so.
    rate = csv[csv["panel"] == "rate"]
    assert len(rate) == 1 and rate["note"].iloc[0].startswith("no data: no serving rate sweep")
    assert "Against request rate: no data" in tex
    csv = csv[csv["panel"] == "batch"]
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
    assert len(csv) == 1 and csv["note"].iloc[0].startswith("no data") and "no data" in tex
    assert "no online cell" in csv["note"].iloc[0] and "no serving rate sweep" in csv["note"].iloc[0]


# --- the serving rate sweep: Figure 9's rate panels, the energy-latency frontier, latency targets -------

RATES = [(0.5, "ok", 9.0, 0.02, 0.3, 2.0), (1.0, "ok", 6.0, 0.04, 0.5, 4.0), (2.0, "saturated", 5.0, 0.04, 2.0, 9.0),
         (4.0, "timeout", 1.0, 0.01, 0.1, 1.0)]


def serving(workload: str = "burstgpt", source: str = "nvml", batch: int = 8, scale: float = 1.0) -> pd.DataFrame:
    """A rate sweep of vllm-online: (rate, status, J/request, TPOT p90, TTFT p90, e2e p90); the other
    percentiles follow from them so that each column is told apart."""
    rows = []
    for rate, status, e, tpot, ttft, e2e in RATES:
        rows.append({"hardware": "hw-a", "model": "m", "variant": "vllm-online", "decoding": "greedy",
                     "workload": workload, "rate_per_s": rate, "batch_size": batch, "n_requests": 32, "status": status,
                     "energy_source": source, "energy_j": 10 * e * scale, "window_s": 10.0, "n_in_window": 20,
                     "energy_per_request_j": e * scale, "energy_per_output_token_j": e * scale / 50,
                     "output_tok_s": 100.0, "ttft_p50_s": ttft / 2, "ttft_p90_s": ttft, "ttft_p99_s": ttft * 1.5,
                     "tpot_p50_s": tpot / 2, "tpot_p90_s": tpot, "tpot_p99_s": tpot * 1.5, "e2e_p50_s": e2e / 2,
                     "e2e_p90_s": e2e, "e2e_p99_s": e2e * 1.5, "queue_max": 0 if status == "ok" else 12})
    return pd.DataFrame(rows)


def replay_runs() -> pd.DataFrame:
    """Two metered replay runs of the same 32 requests with vllm-eager (and one with transformers)."""
    return pd.DataFrame([{"workload": "burstgpt", "hardware": "hw-a", "model": "m", "variant": v, "decoding": "greedy",
                          "run": k, "n_requests": 32, "replay_energy_j": e, "replay_duration_s": 5.0,
                          "energy_source": "nvml", "batch_size": 16}
                         for v, k, e in (("vllm-eager", 0, 320.0), ("vllm-eager", 1, 352.0),
                                         ("transformers-eager", 0, 999.0))])


def test_fig9_rate_panels_against_the_offline_replay(tmp_path):
    m = pd.concat([cell("vllm-eager"), cell("vllm-online", scale=0.95, seed=1)], ignore_index=True)
    F.fig_online(m, FI, FO, files(tmp_path, "fig9_online_offline"), serving=serving(), replay=replay_runs())
    assert_files(tmp_path, "fig9_online_offline")
    csv, tex = read(tmp_path, "fig9_online_offline")
    assert sorted(csv.loc[csv["panel"] == "batch", "batch_size"]) == BATCHES
    rate = csv[csv["panel"] == "rate"].set_index("rate_per_s")
    assert list(rate.index) == [r[0] for r in RATES]
    # Offline: energy per run / requests, mean over the vllm-eager runs (the transformers replay is another stack).
    offline = np.mean([320.0 / 32, 352.0 / 32])
    assert np.allclose(rate["offline_energy_per_request_j"], offline)
    assert np.allclose(rate["offline_energy_per_request_std_j"], np.std([10.0, 11.0], ddof=1))
    assert (rate["offline_variant"] == "vllm-eager").all() and (rate["offline_n_runs"] == 2).all()
    assert list(rate["online_energy_per_request_j"]) == [r[2] for r in RATES]
    assert math.isclose(rate.loc[1.0, "reduction_pct"], 100 * (1 - 6.0 / offline))
    # Every plotted latency, each from its own column.
    s = serving().set_index("rate_per_s")
    for col in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "e2e_p50_s", "e2e_p99_s"):
        assert np.allclose(rate[col], s[col]), col
    assert rate.loc[4.0, "note"].startswith("timeout") and rate.loc[0.5, "note"] != rate.loc[0.5, "note"]  # NaN
    assert "offline replay" in tex and "saturated" in tex


def test_fig9_rate_panels_without_replay_or_online_batches(tmp_path):
    """Only the rate sweep: the batch panel says why it is empty; the rows say the replay is missing."""
    F.fig_online(cell("vllm-eager"), FI, FO, files(tmp_path, "fig9_online_offline"), serving=serving(),
                 replay=pd.DataFrame())
    csv, tex = read(tmp_path, "fig9_online_offline")
    batch, rate = csv[csv["panel"] == "batch"], csv[csv["panel"] == "rate"]
    assert len(batch) == 1 and batch["note"].iloc[0] == "no data: no online cell (vllm-online) was measured"
    assert len(rate) == 4 and rate["offline_energy_per_request_j"].isna().all()
    assert rate["note"].str.contains("no offline replay of burstgpt with vllm-eager").all()
    assert "Against batch size: no data" in tex and "no offline replay" in tex


def test_frontier_marks_the_pareto_front_per_metric(tmp_path):
    # Two batch limits: the second costs 0.8x the first at the same latencies, so it dominates it.
    data = pd.concat([serving(), serving(batch=4, scale=0.8)], ignore_index=True)
    fig_energy_latency_frontier(data, files(tmp_path, "fig_energy_latency_frontier"))
    assert_files(tmp_path, "fig_energy_latency_frontier")
    csv, tex = read(tmp_path, "fig_energy_latency_frontier")
    assert len(csv) == 2 * len(data) and set(csv["metric"]) == {"tpot_p90_s", "e2e_p90_s"}
    front = csv[csv["on_front"]]
    got = {(m, int(b), r) for m, b, r in front[["metric", "batch_size", "rate_per_s"]].itertuples(index=False)}
    # TPOT p90: 0.02 @ 0.5/s (7.2 J) and 0.04 @ 2/s (4.0 J); 1/s (4.8 J at 0.04) is dominated. e2e p90: each rate
    # of batch 4 up to the saturated one is faster-and-costlier than the next.
    assert got == {("tpot_p90_s", 4, 0.5), ("tpot_p90_s", 4, 2.0), ("e2e_p90_s", 4, 0.5), ("e2e_p90_s", 4, 1.0),
                   ("e2e_p90_s", 4, 2.0)}
    timeout = csv[csv["status"] == "timeout"]
    assert not timeout["on_front"].any() and timeout["note"].str.startswith("timeout").all()
    row = csv[(csv["metric"] == "e2e_p90_s") & (csv["rate_per_s"] == 1.0) & (csv["batch_size"] == 8)].iloc[0]
    assert row["latency_s"] == 4.0 and row["energy_per_request_j"] == 6.0
    assert "Pareto front" in tex


def test_frontier_and_fig9_without_a_rate_sweep_say_no_data(tmp_path):
    fig_energy_latency_frontier(pd.DataFrame(), files(tmp_path, "fig_energy_latency_frontier"))
    csv, tex = read(tmp_path, "fig_energy_latency_frontier")
    assert len(csv) == 1 and csv["note"].iloc[0].startswith("no data: no serving rate sweep") and "no data" in tex


def requests_table(source: str = "nvml") -> pd.DataFrame:
    """Per-request rows of two rates: request 0 finished before the steady window (a TTFT, no tokens in the
    window); at 4/s request 4 failed (no first token, no tokens). Shares are tokens in window / total."""
    rows = []
    for rate, energy in ((1.0, 10.0), (4.0, 6.0)):
        out = [10, 20, 40, 80, 160]
        in_window = [0, 30, 50, 90, 170] if rate == 1.0 else [0, 25, 60, 70, 0]
        ttft = [0.05, 0.1, 0.2, 0.4, 0.8] if rate == 1.0 else [0.3, 0.6, 1.2, 2.4, math.nan]
        for k in range(5):
            rows.append({"rate_per_s": rate, "request": k, "arrival_s": 0.5 * k, "input_tokens": 16,
                         "output_tokens": out[k] if not (rate == 4.0 and k == 4) else 0, "ttft_s": ttft[k],
                         "tpot_s": 0.01, "e2e_s": 1.0, "tokens_in_window": in_window[k],
                         "energy_share_j": energy * in_window[k] / sum(in_window), "prompt_weight": 0.25,
                         "error": "timeout" if rate == 4.0 and k == 4 else "", "hardware": "hw-a", "model": "m",
                         "variant": "vllm-online", "decoding": "greedy", "workload": "burstgpt", "batch_size": 8,
                         "energy_source": source})
    return pd.DataFrame(rows)


def test_request_energy_cdfs_scatter_and_left_out_requests(tmp_path):
    reqs = requests_table()
    F.fig_request_energy(reqs, files(tmp_path, "fig_request_energy"))
    assert_files(tmp_path, "fig_request_energy")
    csv, tex = read(tmp_path, "fig_request_energy")
    assert set(csv["panel"]) == {"energy_cdf", "energy_vs_output", "ttft_cdf", "note"}
    has_energy = reqs[reqs["tokens_in_window"] > 0]
    for rate, grp in reqs.groupby("rate_per_s"):
        exp = has_energy[has_energy["rate_per_s"] == rate].sort_values("energy_share_j")
        cdf = csv[(csv["panel"] == "energy_cdf") & (csv["rate_per_s"] == rate)]
        # Only requests with tokens in the window, each once, sorted by energy, the CDF rising to 1.
        assert cdf["request"].tolist() == exp["request"].tolist() and 0 not in cdf["request"].tolist()
        np.testing.assert_allclose(cdf["energy_share_j"], exp["energy_share_j"], rtol=1e-12)
        np.testing.assert_allclose(cdf["cdf"], np.arange(1, len(exp) + 1) / len(exp), rtol=1e-12)
        assert cdf["cdf"].iloc[-1] == 1.0
        scatter = csv[(csv["panel"] == "energy_vs_output") & (csv["rate_per_s"] == rate)].sort_values("request")
        assert scatter["request"].tolist() == sorted(exp["request"]) and scatter["cdf"].isna().all()
        np.testing.assert_allclose(scatter["output_tokens"], exp.sort_values("request")["output_tokens"])
        # The plotted shares are the whole window's energy less the left-out requests' (none here).
        assert math.isclose(scatter["energy_share_j"].sum(), grp["energy_share_j"].sum(), rel_tol=1e-12)
        ttft = csv[(csv["panel"] == "ttft_cdf") & (csv["rate_per_s"] == rate)]
        exp_ttft = grp.dropna(subset=["ttft_s"]).sort_values("ttft_s")
        assert ttft["request"].tolist() == exp_ttft["request"].tolist() and ttft["cdf"].iloc[-1] == 1.0
        assert ttft["ttft_s"].is_monotonic_increasing and ttft["cdf"].is_monotonic_increasing
    notes = csv[csv["panel"] == "note"].set_index("rate_per_s")["note"]
    assert notes[1.0] == "1 request(s) with no tokens inside the steady window left out of panels a and b"
    assert notes[4.0].startswith("2 request(s) with no tokens") and notes[4.0].endswith(
        "1 request(s) without a first token (failed or timed out) left out of panel c")
    assert (csv.loc[csv["panel"] != "note", "note"].fillna("") == "").all()
    # The longest quarter of the plotted requests (output tokens >= their 75th percentile) and its energy share.
    q = np.quantile(has_energy["output_tokens"], 0.75)
    share = 100 * has_energy.loc[has_energy["output_tokens"] >= q, "energy_share_j"].sum() / 16.0
    assert f"burstgpt on hw-a, m, vllm-online: {share:.0f}\\%" in tex
    assert "not a per-request measurement" in tex and "cpu-estimate" not in tex
    assert "Prompt token weight: m, vllm-online: 0.25." in tex and (csv.loc[csv["panel"] != "note", "prompt_weight"]
                                                                     == 0.25).all()


def test_request_energy_from_estimated_energy_says_so(tmp_path):
    F.fig_request_energy(requests_table("cpu-estimate"), files(tmp_path, "fig_request_energy"))
    csv, tex = read(tmp_path, "fig_request_energy")
    assert (csv["energy_source"] == "cpu-estimate").all()
    assert "\\texttt{cpu-estimate} is CPU time" in tex and "CDFs are dashed" in tex


def test_request_energy_without_per_request_tables_says_no_data(tmp_path):
    from llm_energy.paper import registry as paper

    # Through the registry: no rate sweep gives no files, the loader an empty table.
    paper.write("fig_request_energy", {"requests": []}, {}, files(tmp_path, "fig_request_energy"))
    assert_files(tmp_path, "fig_request_energy")
    csv, tex = read(tmp_path, "fig_request_energy")
    assert len(csv) == 1 and csv["note"].iloc[0].startswith("no data: no per-request table") and "no data" in tex
    # Requests that all failed: nothing to plot, and it says why.
    dead = requests_table().assign(tokens_in_window=0, ttft_s=math.nan)
    F.fig_request_energy(dead, files(tmp_path / "dead", "fig_request_energy"))
    csv, tex = read(tmp_path / "dead", "fig_request_energy")
    assert len(csv) == 1 and "no request of the rate sweep got a first token" in csv["note"].iloc[0]
    assert "hw-a" in tex


def test_latency_targets_table(tmp_path):
    from llm_energy.paper.tables import TableFiles, table_latency_targets

    out = TableFiles(tmp_path / "t.tex", tmp_path / "t.csv")
    targets = {"tpot_p90_s": 0.05, "ttft_p90_s": 0.2, "e2e_p90_s": 5}
    table_latency_targets(serving(), targets, out)
    csv, tex = pd.read_csv(out.csv).set_index("target"), out.tex.read_text()
    assert list(csv.index) == list(targets) and (csv["workload"] == "burstgpt").all()
    # TPOT p90 <= 0.05: 0.5, 1 and 2 r/s meet it (timeout never counts); 2 r/s uses the least energy.
    tpot = csv.loc["tpot_p90_s"]
    assert tpot["result"] == "met" and tpot["energy_per_request_j"] == 5.0 and tpot["rate_per_s"] == 2.0
    assert tpot["batch_size"] == 8 and tpot["variant"] == "vllm-online" and tpot["n_meeting"] == 3
    # TTFT p90 <= 0.2 s: no whole-window row gets there (the timed-out 0.1 s does not count).
    ttft = csv.loc["ttft_p90_s"]
    assert ttft["result"] == "not met" and ttft["best_latency"] == 0.3 and np.isnan(ttft["energy_per_request_j"])
    assert csv.loc["e2e_p90_s", "rate_per_s"] == 1.0
    assert "not met (best 0.3 s)" in tex and "TPOT p90 $\\le$ 0.05 s" in tex and "2 req/s, batch 8" in tex
    assert tex.count("\\\\\n") == 4  # header + 3 targets


def test_latency_targets_table_without_sweep_or_targets(tmp_path):
    from llm_energy.paper.tables import TableFiles, table_latency_targets

    out = TableFiles(tmp_path / "t.tex", tmp_path / "t.csv")
    table_latency_targets(pd.DataFrame(), {"tpot_p90_s": 0.05}, out)
    csv = pd.read_csv(out.csv)
    assert list(csv["result"]) == ["no data"] and "No serving rate sweep" in out.tex.read_text()
    table_latency_targets(serving(), {}, out)
    assert list(pd.read_csv(out.csv)["result"]) == ["no targets"] and "online.latency\\_targets" in out.tex.read_text()


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


def test_fig1_compares_both_methods_on_the_same_requests_with_the_whole_trace_beside(tmp_path, monkeypatch):
    from llm_energy.paper.figures import workloads

    est, by_bin = both_methods()
    cover = "requests within the top bin edges (input <= 4096, output <= 512)"
    model = est["method"] == "model"
    est = est.assign(coverage=cover, n_excluded=np.where(est["workload"] == "burstgpt", 7, 0),
                     whole_trace_energy_j=np.where(model, est["energy_j"] * 1.4, np.nan))
    diamonds = []
    real_plot = workloads.plt.Axes.plot

    def plot(ax, *args, **kw):
        if kw.get("marker") == "D":
            diamonds.append(round(float(args[1][0]), 9))
        return real_plot(ax, *args, **kw)

    monkeypatch.setattr(workloads.plt.Axes, "plot", plot)
    F.fig_workload_energy(est, files(tmp_path, "fig1_workload_energy"), by_bin)
    csv, tex = read(tmp_path, "fig1_workload_energy")
    assert sorted(diamonds) == sorted(round(e / 1e3, 9) for e in est.loc[model, "whole_trace_energy_j"])
    assert "Both methods price the same requests, requests within the top bin edges" in tex
    assert "(left out, per workload: burstgpt 7)" in tex and "Diamond: the energy model over the whole trace" in tex
    assert csv.loc[csv["method"] == "model", "whole_trace_energy_j"].notna().all()


def test_each_stack_has_one_colour_in_figure_1_and_the_replay_figure():
    from llm_energy.paper.figures.workloads import IDEAL, stack_colours

    fig1 = stack_colours([IDEAL, "vllm-eager", "transformers-eager"])
    replay = stack_colours(["vllm-eager", "transformers-eager"])  # no ideal, other order
    assert replay["vllm-eager"] == fig1["vllm-eager"] and replay["transformers-eager"] == fig1["transformers-eager"]
    assert len({fig1[k] for k in fig1}) == 3


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
    from llm_energy.paper.tables import TableFiles, table_estimates

    est, _ = both_methods()
    model = est["method"] == "model"
    est = est.assign(whole_trace_energy_j=np.where(model, 3.0e5, np.nan),
                     coverage="requests within the top bin edges (input <= 4096, output <= 512)")
    sav = pd.DataFrame([{"workload": w, "hardware": "hw-a", "model": "m", "decoding": "greedy",
                         "baseline": "transformers-eager", "optimized": "vllm-eager", "saving_pct": -100.0}
                        for w in ("imdb", "burstgpt")])
    out = TableFiles(tmp_path / "t4.tex", tmp_path / "t4.csv")
    table_estimates(est, sav, out)
    csv, tex = pd.read_csv(out.csv).set_index(["workload", "variant"]), out.tex.read_text()
    assert len(csv) == 4
    # the model's whole trace beside the two methods on the same requests, and the caption says so
    assert (csv["model_whole_trace_energy_j"] == 3.0e5).all() and csv["binned_whole_trace_energy_j"].isna().all()
    assert tex.count(" & 300 & ") == 4 and "both methods on the same requests" in tex
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


def test_a_stack_without_replay_says_the_one_reason_that_applies_in_table4(tmp_path):
    from llm_energy.estimates.estimate import no_replay_note
    from llm_energy.paper.tables import TableFiles, table_estimates

    val = pd.DataFrame({"hardware": ["cpu-x"], "error_pct": [5.0]})
    merged = no_replay_note("h100-copied", "cpu-x", val)
    assert merged == ("no replay validation of this cell: it was measured on another machine (h100-copied) and "
                      "copied in; replays run only on the machine that measures the cell")
    assert no_replay_note("cpu-x", "cpu-x", None).endswith(": replay.enabled is false")
    assert no_replay_note("cpu-x", "cpu-x", val).endswith(": it measures no bin grid, and only grid cells are replayed")
    est, _ = both_methods()
    unknown = est["systematic_error_pct"].isna()
    assert unknown.any()
    est.loc[unknown, "systematic_error_note"] = no_replay_note("hw-a", "cpu-x", val)
    out = TableFiles(tmp_path / "t4.tex", tmp_path / "t4.csv")
    table_estimates(est, pd.DataFrame(columns=["workload", "hardware", "model", "decoding", "baseline",
                                               "optimized", "saving_pct"]), out)
    tex = out.tex.read_text()
    assert "? where the stack has no replay: it was measured on another machine (hw-a) and copied in;" in tex
    assert "replay.enabled is false" not in tex and "or it measures no bin grid" not in tex


def test_replay_figure_shows_both_errors(tmp_path):
    val = pd.DataFrame([{"workload": w, "hardware": "hw-a", "model": "m", "variant": v, "decoding": "greedy",
                         "n_requests": 24, "error_pct": e, "model_error_pct": m, "energy_source": "nvml"}
                        for w, v, e, m in (("imdb", "vllm-eager", 12.0, -3.0), ("imdb", "transformers-eager", 40.0,
                                                                                 np.nan))])
    F.fig_replay_validation(val, files(tmp_path, "fig_replay_validation"))
    csv, tex = read(tmp_path, "fig_replay_validation")
    assert sorted(csv["error_pct"]) == [12.0, 40.0] and csv["model_error_pct"].isna().sum() == 1
    assert "Hollow: the paper's binned" in tex and "No bar: 1 estimate(s)" in tex
    assert "Error bars: the interval the noise alone allows" in tex


def test_replay_figure_draws_each_method_interval(tmp_path, monkeypatch):
    from llm_energy.paper.figures import workloads

    drawn = []
    real_bar = workloads.plt.Axes.bar

    def bar(ax, x, height, *args, yerr=None, **kw):
        drawn.append((round(float(height), 6), yerr))
        return real_bar(ax, x, height, *args, yerr=yerr, **kw)

    monkeypatch.setattr(workloads.plt.Axes, "bar", bar)
    val = pd.DataFrame([{"workload": "imdb", "hardware": "hw-a", "model": "m", "variant": "vllm-eager",
                         "decoding": "greedy", "n_requests": 24, "error_pct": -12.0, "model_error_pct": 3.0,
                         "interval_pct": 5.0, "model_interval_pct": 7.0, "energy_source": "nvml"}])
    F.fig_replay_validation(val, files(tmp_path, "fig_replay_validation"))
    # symmetric bars on the linear axis, a negative error's included (the log axes cap the lower one)
    assert sorted(drawn) == [(-12.0, 5.0), (3.0, 7.0)]


def test_replay_figure_marks_the_models_error_with_the_meters_changes_taken_out(tmp_path, monkeypatch):
    from llm_energy.paper.figures import workloads

    marks = []
    real_plot = workloads.plt.Axes.plot

    def plot(ax, x, y, *args, **kw):
        if kw.get("marker") == "D":
            marks.append(float(y[0]))
        return real_plot(ax, x, y, *args, **kw)

    monkeypatch.setattr(workloads.plt.Axes, "plot", plot)
    val = pd.DataFrame([{"workload": w, "hardware": "hw-a", "model": "m", "variant": "transformers-eager",
                         "decoding": "greedy", "n_requests": 24, "error_pct": -30.0, "model_error_pct": raw,
                         "model_error_steady_pct": steady, "interval_pct": 5.0, "model_interval_pct": 15.0,
                         "energy_source": "cpu-estimate"}
                        for w, raw, steady in (("imdb", 17.0, 2.4), ("wmt14", 16.0, np.nan))])
    F.fig_replay_validation(val, files(tmp_path, "fig_replay_validation"))
    csv, tex = read(tmp_path, "fig_replay_validation")
    assert marks == [2.4]  # the model's bar only, and no mark where the correction could not be made
    assert sorted(csv["model_error_pct"]) == [16.0, 17.0]  # the figure's data keep the metered errors
    assert "Diamond: the model's error with the meter's changes taken out" in tex and "stay as metered" in tex


def test_captions_escape_latex(tmp_path):
    m = cell("vllm-eager", hardware="cpu_x", model="tiny_llama")
    F.fig_decoding(m, FI, FO, files(tmp_path, "fig3_decoding"))
    tex = (tmp_path / "fig3_decoding.tex").read_text()
    assert "cpu\\_x" in tex and "tiny\\_llama" in tex and "\\\\times" not in tex


# --- the registry: one entry per figure and table, each its own job ----------------------------------

def test_registry_names_each_output_once_and_its_function_takes_what_it_names():
    import inspect

    from llm_energy.paper import registry as paper

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
    from llm_energy.paper import registry as paper

    on = paper.enabled(paper.FIGURES, {"replay": {"enabled": True}})
    off = paper.enabled(paper.FIGURES, {"replay": {"enabled": False}})
    assert on == off[:10] + ["fig_replay_validation"] + off[10:] and len(off) == 12
    assert off[0] == "fig1_workload_energy" and "fig10_prefill_decode_transformers" in off


def test_write_takes_the_paths_it_is_given(tmp_path):
    """A job writes exactly the four files Snakemake names, wherever they are, with the CSV a direct call writes."""
    from llm_energy.paper import registry as paper

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

    from llm_energy.paper import registry as paper
    from llm_energy.paper.tables import TableFiles

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


def test_check_serving_accepts_the_written_outputs_and_catches_a_wrong_front_flag(tmp_path):
    from check_outputs import check_serving

    from llm_energy.paper.tables import TableFiles, table_latency_targets

    data = pd.concat([serving(), serving(batch=4, scale=0.8)], ignore_index=True)
    (tmp_path / "results/serving/hw-a").mkdir(parents=True)
    data.to_parquet(tmp_path / "results/serving/hw-a/greedy.parquet", index=False)
    figs = tmp_path / "paper/figures"
    F.fig_online(cell("vllm-eager"), FI, FO, files(figs, "fig9_online_offline"), serving=data, replay=replay_runs())
    fig_energy_latency_frontier(data, files(figs, "fig_energy_latency_frontier"))
    table_latency_targets(data, {"tpot_p90_s": 0.05, "ttft_p90_s": 0.2}, TableFiles(
        tmp_path / "paper/tables/table_latency_targets.tex", tmp_path / "paper/tables/table_latency_targets.csv"))
    check_serving(tmp_path)
    front = pd.read_csv(figs / "fig_energy_latency_frontier.csv")
    front.loc[front["on_front"].idxmax(), "on_front"] = False
    front.to_csv(figs / "fig_energy_latency_frontier.csv", index=False)
    with pytest.raises(AssertionError):
        check_serving(tmp_path)


def test_every_written_figure_names_its_hardware_and_energy_source_on_the_image(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    from llm_energy.paper.figures.style import FigureFiles, save, stamp

    data = pd.DataFrame({"hardware": ["cpu-x", "cpu-x"], "energy_source": ["cpu-estimate", "flops-ideal"],
                         "energy_j": [1.0, 2.0]})
    assert stamp(data) == "hardware: cpu-x; energy: cpu-estimate (CPU-time estimate, not a power meter)"
    assert stamp(pd.DataFrame({"x": [1]})) == ""  # data that names neither: no footer
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    files = FigureFiles.in_folder(tmp_path, "figx")
    save(fig, data, files, "caption")
    png = Image.open(files.png)
    assert png.info["Description"] == stamp(data) and png.info["Title"] == "figx"
    pdf = files.pdf.read_bytes()
    assert b"/Subject (hardware: cpu-x; energy: cpu-estimate \\(CPU-time estimate, not a power meter\\))" in pdf
