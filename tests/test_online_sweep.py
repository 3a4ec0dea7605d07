"""The rate sweep's arithmetic on synthetic timings whose answers are known by hand."""

import math

import numpy as np
import pytest

from llm_energy.online.sweep import (
    Timing,
    latency_columns,
    poisson_arrivals,
    queue_max,
    rate_row,
    request_rows,
    window_requests,
)


def test_poisson_arrivals_are_seeded_and_have_the_rate():
    a = poisson_arrivals(4000, 5.0, seed=0)
    assert a[0] == 0.0 and np.all(np.diff(a) > 0)
    assert len(a) / a[-1] == pytest.approx(5.0, rel=0.05)
    assert np.array_equal(a, poisson_arrivals(4000, 5.0, seed=0))
    assert not np.array_equal(a[:10], poisson_arrivals(10, 5.0, seed=1))


def test_the_steady_window_leaves_out_the_first_and_last_eighth():
    assert window_requests(32) == (4, 28)
    assert window_requests(8) == (1, 7)
    assert window_requests(2) == (0, 1)  # too few to trim: the whole run


def steady(n=8, gap=1.0, service=0.5, tokens=5):
    """Request k arrives at k*gap, gets its first token 0.1 s later, one token per 0.1 s after."""
    return [Timing(k * gap, [(k * gap + 0.1 * (j + 1), 1) for j in range(tokens)], tokens, 20) for k in range(n)]


def test_latency_percentiles_of_a_known_schedule():
    cols = latency_columns(steady())
    assert cols["ttft_p50_s"] == pytest.approx(0.1) and cols["ttft_p99_s"] == pytest.approx(0.1)
    assert cols["tpot_p90_s"] == pytest.approx(0.1)  # (0.5 - 0.1) / (5 - 1)
    assert cols["e2e_p50_s"] == pytest.approx(0.5)


def test_rate_row_energy_per_token_and_request_over_the_window():
    timings = steady()
    row = rate_row(timings, 1.0, (1.0, 7.0), 60.0, batch_size=4, fallback="", timed_out=False)
    # Tokens streamed inside [1, 7]: requests 1..6 all 5 tokens (30) + request 0's none (its last at 0.5).
    assert row["output_tokens_in_window"] == 30
    assert row["energy_per_output_token_j"] == pytest.approx(2.0)
    assert row["energy_per_request_j"] == pytest.approx(10.0)  # 2 J x 5 tokens
    assert row["status"] == "ok" and row["window"] == "steady" and row["queue_max"] == 1  # the one arriving
    assert row["output_tok_s"] == pytest.approx(5.0)


def test_a_server_that_falls_behind_is_saturated_and_queues():
    # Arrivals every 0.1 s, but each request's first token only 2 s after the previous one's.
    timings = [Timing(0.1 * k, [(2.0 * (k + 1), 1), (2.0 * (k + 1) + 0.1, 1)], 2, 10) for k in range(8)]
    row = rate_row(timings, 10.0, (0.1, 0.7), 5.0, batch_size=4, fallback="", timed_out=False)
    assert row["status"] == "saturated" and row["queue_max"] == 8
    assert rate_row(timings, 10.0, (0.1, 0.7), 5.0, batch_size=8, fallback="", timed_out=False)["status"] == "ok"
    assert rate_row(timings, 10.0, (0.1, 0.7), 5.0, batch_size=4, fallback="", timed_out=True)["status"] == "timeout"


def test_request_energy_shares_add_up_to_the_window():
    timings = steady()
    rows = request_rows(timings, (1.0, 7.0), 60.0, 1.0)
    assert sum(r["energy_share_j"] for r in rows) == pytest.approx(60.0)
    # Request 0 ended before the window: no share; request 3 (prompt 20 + 5 tokens) a full share.
    assert rows[0]["energy_share_j"] == 0.0
    assert rows[3]["tokens_in_window"] == 25


def test_queue_max_counts_requests_waiting_for_their_first_token():
    ts = [Timing(0.0, [(5.0, 1)], 1, 1), Timing(1.0, [(6.0, 1)], 1, 1), Timing(2.0, [], 0, 1, error="timeout")]
    assert queue_max(ts) == 3
    assert math.isnan(ts[2].ttft_s)


def test_attribution_recovers_a_known_prefill_decode_split():
    """Synthetic truth: a prompt token costs 0.1 of an output token. Split by plain token counts, the
    requests' energies are far off; weighted by the cell's measured ratio, exact."""
    import pandas as pd

    from llm_energy.online.sweep import prompt_token_weight

    rng = np.random.default_rng(0)
    timings = []
    for k in range(16):
        inp, out = int(rng.integers(50, 800)), int(rng.integers(5, 120))
        timings.append(Timing(0.5 * k, [(0.5 * k + 0.2 + 0.02 * j, 1) for j in range(out)], out, inp))
    true = np.array([0.1 * t.input_tokens + t.tokens for t in timings])
    window = (-1.0, 1e9)

    def error(weight):
        got = np.array([r["energy_share_j"] for r in request_rows(timings, window, true.sum(), 1.0, weight)])
        return np.abs(got - true) / true

    assert error(1.0).max() > 0.5  # plain token counts: one request more than 50% off
    assert error(0.1).max() == pytest.approx(0.0, abs=1e-9)
    rows = request_rows(timings, window, true.sum(), 1.0, 0.1)
    assert rows[0]["prefill_energy_j"] == pytest.approx(0.1 * timings[0].input_tokens)
    assert rows[0]["decode_energy_j"] == pytest.approx(timings[0].tokens)
    # The ratio from a cell's rows: prefill 2 J over 8 x 64 prompt tokens, decode 28 J over 8 x 7 tokens.
    m = pd.DataFrame({"status": "ok", "valid": True, "batch_size": [8, 1], "input_len": 64, "output_len": 8,
                      "prefill_energy_j": [2.0, 9.0], "decode_energy_j": [28.0, 1.0]})
    assert prompt_token_weight(m, 8) == pytest.approx((2.0 / 512) / (28.0 / 56))
    assert prompt_token_weight(None, 8) == 1.0


def test_a_steady_window_without_a_streamed_token_falls_back_to_the_whole_run():
    """At a high rate on a slow server every request of the steady window may still be queued: its energy
    then has no token to go to, so the rate is metered over the whole run, and the shares add up."""
    import time

    from llm_energy.online.sweep import EMPTY_WINDOW, sweep_rate

    class QueuedServer:
        """Every request's tokens stream 0.3 s after it is sent, all at once."""

        def timed_request(self, prompt, out, timeout_s):
            time.sleep(0.3)
            return {"chunks": [(time.perf_counter(), out)], "tokens": out}

    class Clock:
        """Energy that grows with time: 10 J per second."""

        def read(self):
            return 10 * time.perf_counter()

    prompts, outs = [[5] * 4] * 8, [3] * 8
    row, requests = sweep_rate(QueuedServer(), Clock(), prompts, outs, 200.0, seed=0, timeout_s=10,
                               min_window_s=0.0, batch_size=8)
    assert row["window"] == f"whole run ({EMPTY_WINDOW})"
    assert row["output_tokens_in_window"] == 24 and row["energy_j"] > 0
    assert sum(r["energy_share_j"] for r in requests) == pytest.approx(row["energy_j"])
    assert row["energy_per_output_token_j"] == pytest.approx(row["energy_j"] / 24)
