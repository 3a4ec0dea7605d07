"""The run's summary (llm_energy/paper/summary.py) on small made-up tables, and the bin job's warning
about requests beyond the bin edges: every number recomputed here from the inputs."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from llm_energy.paper import summary as S
from llm_energy.workloads.binning import bin_requests, warn_excluded

IN_EDGES, OUT_EDGES = [8, 16], [4, 8]
# w1: two of six requests lie beyond the top edges (input 40; output 20); w2: none.
PROFILES = {
    "w1": pd.DataFrame({"input_tokens": [3, 9, 16, 40, 5, 7], "output_tokens": [2, 8, 3, 4, 20, 6]}),
    "w2": pd.DataFrame({"input_tokens": [1, 2, 12], "output_tokens": [1, 5, 7]}),
}
CELL_A = {"hardware": "cpu-x", "model": "m", "variant": "vllm-eager", "decoding": "greedy"}
CELL_B = {"hardware": "cpu-x", "model": "m", "variant": "transformers-eager", "decoding": "greedy"}


def _bins():
    return {w: bin_requests(p, IN_EDGES, OUT_EDGES)[1] for w, p in PROFILES.items()}


def _estimates(source_a="cpu-estimate", source_b="cpu-estimate"):
    rows = []
    for w, k in (("w1", 1.0), ("w2", 2.0)):
        for cell, e, src, sys_b, sys_m in ((CELL_A, 10.0, source_a, 50.0, 8.0), (CELL_B, 30.0, source_b, 5.0, 9.0)):
            for method, factor, sys in (("binned", 1.0, sys_b), ("model", 0.8, sys_m)):
                rows.append({"workload": w, **cell, "method": method, "energy_per_request_j": e * k * factor,
                             "energy_j": e * k * factor * 4, "systematic_error_pct": sys, "energy_source": src})
    return pd.DataFrame(rows)


def _validation():
    # A's binned estimate is 50 % above its replay on w1 with a 10 % interval (40 points beyond); B's
    # 5 % is within its 10 %; the models' errors lie within their intervals.
    return pd.DataFrame([
        {"workload": "w1", **CELL_A, "error_pct": 50.0, "interval_pct": 10.0, "model_error_pct": -8.0,
         "model_interval_pct": 12.0},
        {"workload": "w1", **CELL_B, "error_pct": -5.0, "interval_pct": 10.0, "model_error_pct": 9.0,
         "model_interval_pct": 12.0},
    ])


FINDINGS = pd.DataFrame({"verdict": ["reproduced", "reproduced", "not testable here", "inconclusive"]})


def _covered_mean_output(profile):
    keep = (profile["input_tokens"] <= IN_EDGES[-1]) & (profile["output_tokens"] <= OUT_EDGES[-1])
    return profile.loc[keep, "output_tokens"].mean()


def _summary(**kw):
    return S.summarize(_estimates(**kw), _bins(), PROFILES, _validation(), FINDINGS)


def test_leaderboard_numbers_recomputed():
    board, _ = _summary()
    est = _estimates()
    assert len(board) == 4
    for _, r in board.iterrows():
        key = (est["workload"] == r["workload"]) & (est["variant"] == r["variant"])
        for method in ("binned", "model"):
            e = est.loc[key & (est["method"] == method), "energy_per_request_j"].item()
            assert r[f"{method}_energy_per_request_j"] == pytest.approx(e)
            tokens = _covered_mean_output(PROFILES[r["workload"]])
            assert r[f"{method}_wh_per_1k_output_tokens"] == pytest.approx(e / 3600 / tokens * 1000)
        p = PROFILES[r["workload"]]
        outside = (p["input_tokens"] > IN_EDGES[-1]) | (p["output_tokens"] > OUT_EDGES[-1])
        assert r["n_excluded"] == outside.sum() and r["n_requests"] == len(p)
        share = p[outside].sum().sum() / p.sum().sum()
        assert r["excluded_token_share"] == pytest.approx(share)


def test_recommended_method_and_rank():
    board, _ = _summary()
    # A: model's worst error 8 < binned's 50; B: binned's 5 < model's 9.
    by = board.set_index(["workload", "variant"])
    assert by.loc[("w1", "vllm-eager"), "method"] == "model"
    assert by.loc[("w1", "transformers-eager"), "method"] == "binned"
    assert by.loc[("w1", "vllm-eager"), "energy_per_request_j"] == pytest.approx(8.0)
    for w, part in board.groupby("workload"):
        ordered = part.sort_values("energy_per_request_j")
        assert list(ordered["rank"]) == list(range(1, len(part) + 1)), w


def test_flags_when_warranted():
    board, text = _summary()
    # 2 of 6 requests of w1 beyond the edges, with their token share; none of w2.
    p = PROFILES["w1"]
    outside = (p["input_tokens"] > IN_EDGES[-1]) | (p["output_tokens"] > OUT_EDGES[-1])
    tok = 100 * p[outside].sum().sum() / p.sum().sum()
    assert f"w1: 2 of 6 requests (33.3 %), {tok:.1f} % of tokens, lie beyond the top bin edges" in text
    assert "w2:" not in text.split("## Every workload")[0].split("## Read before")[1]
    # A's binned error (50 %) is 40 points beyond its 10 % interval; B's 5 % is within.
    assert ("the binned estimate is 50 % above its replay for m vllm-eager on w1, 40 points beyond the ±10 %"
            in text)
    assert "for m transformers-eager" not in text
    assert "the model estimate is" not in text
    assert "energy is a CPU-time estimate, not a power meter" in text
    row = board.set_index(["workload", "variant"]).loc[("w1", "vllm-eager"), "flags"]
    assert "binned +50 % against its replay, 40 points beyond its ±10 % interval" in row
    assert "33.3 % of requests" in row
    clean = board.set_index(["workload", "variant"]).loc[("w2", "transformers-eager"), "flags"]
    assert "left out" not in clean and "beyond" not in clean


def test_no_flags_when_not_warranted():
    bins = {"w2": _bins()["w2"]}
    est = _estimates(source_a="rapl", source_b="nvml")
    val = _validation().assign(error_pct=[5.0, -5.0])
    board, text = S.summarize(est[est["workload"] == "w2"], bins, {"w2": PROFILES["w2"]}, val, FINDINGS)
    assert "## Read before using these numbers (0)" in text and "nothing flagged" in text
    assert (board["flags"] == "").all()


def test_unreplayed_stack_and_errors_table():
    est = _estimates().assign(systematic_error_pct=np.nan)
    board, text = S.summarize(est, _bins(), PROFILES, None, FINDINGS)
    assert "never checked against a metered replay" in text
    assert "No stack was replayed" in text
    assert board["binned_replay_error_pct"].isna().all()
    worst = S.worst_errors(_validation())
    a = worst[(worst["variant"] == "vllm-eager") & (worst["method"] == "binned")].iloc[0]
    assert a["error_pct"] == 50.0 and a["beyond_pct"] == pytest.approx(40.0)
    b = worst[(worst["variant"] == "transformers-eager") & (worst["method"] == "model")].iloc[0]
    assert b["beyond_pct"] == 0.0


def test_verdict_counts_and_headline():
    counts = S.verdict_counts(FINDINGS)
    assert counts == {"reproduced": 2, "not reproduced": 0, "inconclusive": 1, "not testable here": 1}
    _, text = _summary()
    assert "2 reproduced, 0 not reproduced, 1 inconclusive, 1 not testable here" in text
    assert text.splitlines()[0] == "# Summary of this run (cpu-x)"


def test_outside_interval():
    assert S.outside_interval(-30.0, 10.0) == 20.0
    assert S.outside_interval(5.0, 10.0) == 0.0
    assert math.isnan(S.outside_interval(5.0, float("nan")))


def test_short_form(tmp_path):
    assert S.short_form(tmp_path / "absent.md") == ""
    page = tmp_path / "summary.md"
    page.write_text("\n".join(f"line {i}" for i in range(40)) + "\n")
    short = S.short_form(page, n_lines=25).splitlines()
    assert short[:25] == [f"line {i}" for i in range(25)]
    assert short[25] == f"... 15 more lines in {page}"
    page.write_text("one\ntwo\n")
    assert S.short_form(page).splitlines() == ["one", "two", f"(full: {page})"]


def test_bin_warning(caplog):
    _, summary = bin_requests(PROFILES["w1"], IN_EDGES, OUT_EDGES)
    with caplog.at_level(logging.WARNING, logger="llm_energy.workloads.binning"):
        warn_excluded("w1", summary)
    (record,) = caplog.records
    p = PROFILES["w1"]
    outside = (p["input_tokens"] > IN_EDGES[-1]) | (p["output_tokens"] > OUT_EDGES[-1])
    tok = 100 * p[outside].sum().sum() / p.sum().sum()
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        f"w1: 2 of 6 requests (33.3 %), {tok:.1f} % of tokens, lie beyond the top bin edges (input 16, output 8)")
    assert "widen bins.input/bins.output" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llm_energy.workloads.binning"):
        warn_excluded("w2", bin_requests(PROFILES["w2"], IN_EDGES, OUT_EDGES)[1])
    assert not caplog.records
