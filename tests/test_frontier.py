"""The Pareto front of energy against latency and the least energy that meets a latency target, on
hand-made points whose answer is known."""

from __future__ import annotations

import math

import pandas as pd

from llm_energy.online.frontier import latency_targets, pareto_front


def test_a_single_point_is_the_front():
    assert pareto_front([(0.5, 3.0)]) == [True]
    assert pareto_front([]) == []


def test_dominated_points_are_off_the_front():
    # (latency, energy): the third is slower and costlier than the second; the last is as fast as the
    # first but costlier; the fourth costs as much as the second but is slower.
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 3.0), (1.0, 6.0), (5.0, 1.0)]
    assert pareto_front(points) == [True, True, False, False, False, True]


def test_exact_ties_are_both_on_the_front_and_order_does_not_matter():
    points = [(2.0, 3.0), (1.0, 5.0), (2.0, 3.0)]
    assert pareto_front(points) == [True, True, True]
    assert pareto_front(list(reversed(points))) == [True, True, True]


def test_a_missing_value_is_never_on_the_front():
    assert pareto_front([(float("nan"), 1.0), (2.0, None), (3.0, 4.0)]) == [False, False, True]


def rows() -> pd.DataFrame:
    """Four settings of a rate sweep: energy per request falls and latency rises with the rate; the
    timed-out one is the cheapest but holds partial values."""
    base = {"hardware": "hw-a", "model": "m", "variant": "vllm-online", "decoding": "greedy", "batch_size": 8}
    data = [(0.5, "ok", 9.0, 0.02, 2.0), (1.0, "ok", 6.0, 0.04, 4.0), (2.0, "saturated", 5.0, 0.04, 9.0),
            (4.0, "timeout", 1.0, 0.01, 1.0)]
    return pd.DataFrame([{**base, "rate_per_s": r, "status": s, "energy_per_request_j": e, "tpot_p90_s": t,
                          "e2e_p90_s": lat} for r, s, e, t, lat in data])


def test_a_target_met_by_several_rows_takes_the_least_energy():
    (tpot, e2e) = latency_targets(rows(), {"tpot_p90_s": 0.05, "e2e_p90_s": 5})
    # All three whole-window rows meet TPOT 0.05; 2 r/s is the cheapest (the timeout row never counts).
    assert tpot["result"] == "met" and tpot["n_meeting"] == 3 and tpot["n_rows"] == 3
    assert tpot["energy_per_request_j"] == 5.0 and tpot["rate_per_s"] == 2.0 and tpot["batch_size"] == 8
    assert tpot["latency"] == 0.04 and tpot["best_latency"] == 0.02
    # e2e p90 <= 5 s: 0.5 and 1 r/s; 1 r/s costs less.
    assert e2e["result"] == "met" and e2e["n_meeting"] == 2 and e2e["rate_per_s"] == 1.0
    assert e2e["energy_per_request_j"] == 6.0 and e2e["hardware"] == "hw-a" and e2e["variant"] == "vllm-online"


def test_a_target_met_by_none_says_so_with_the_best_latency():
    (row,) = latency_targets(rows(), {"tpot_p90_s": 0.01})
    assert row["result"] == "not met" and row["n_meeting"] == 0 and row["best_latency"] == 0.02
    assert math.isnan(row["energy_per_request_j"]) and row["rate_per_s"] is None


def test_equal_energy_goes_to_the_lower_latency():
    r = rows().assign(energy_per_request_j=[6.0, 6.0, 7.0, 1.0])
    (row,) = latency_targets(r, {"e2e_p90_s": 10})
    assert row["rate_per_s"] == 0.5 and row["latency"] == 2.0


def test_an_unknown_metric_or_no_rows_is_said_not_raised():
    unknown, empty = latency_targets(rows(), {"tpot_p95_s": 0.1}), latency_targets(rows().iloc[0:0],
                                                                                   {"ttft_p90_s": 1.0})
    assert unknown[0]["result"] == "unknown metric" and "tpot_p90_s" in unknown[0]["note"]
    assert empty[0]["result"] == "no data" and empty[0]["n_rows"] == 0
    assert latency_targets(rows(), {}) == []
