"""Online serving under load: a real trace's requests sent to the vLLM server at a sweep of Poisson
rates, every request's latency recorded and the energy of a steady-state window metered.

For each rate the same seeded sample (the replay stage's: same workload, size and seed, so the
offline replay of the same requests is its baseline) arrives as a Poisson process; nothing caps the
client, so the server's scheduler (at most ``batch_size`` running) decides, and a rate above what it
sustains shows as queueing (``saturated``), never as a hang: each rate has a time limit (``timeout``).

Steady-state window: from the arrival of request ``k`` to the arrival of request ``n - k``,
``k = ceil(n / 8)``: the first eighth (the server filling up) and the last eighth with the drain
after it are left out. The meter is read at those two instants (by the thread that sends requests,
which is at that instant by construction). A window shorter than ``min_window_s`` falls back to the
whole run (first arrival to last token), and the row says so in ``window``.

Energy per output token = window energy / tokens streamed inside the window; energy per request =
that x the sample's mean output length (prefill energy spent inside the window is carried by the
output tokens of the same window). Latency: TTFT = first token - arrival; TPOT = (last token - first
token) / (tokens - 1); end to end = last token - arrival.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llm_energy.estimates.replay import prompts_for, sample_requests
from llm_energy.measurement.cell import CellParams, cell_job
from llm_energy.pipeline.config import cell_of, job_params
from llm_energy.pipeline.io import write_parquet

log = logging.getLogger(__name__)

PERCENTILES = (50, 90, 99)


def poisson_arrivals(n: int, rate_per_s: float, seed: int) -> np.ndarray:
    """Arrival offsets (s) of ``n`` requests of a Poisson process at ``rate_per_s``, the first at 0."""
    gaps = np.random.default_rng([seed, int(rate_per_s * 1000)]).exponential(1.0 / rate_per_s, size=max(n - 1, 0))
    return np.concatenate([[0.0], np.cumsum(gaps)])


def window_requests(n: int) -> tuple[int, int]:
    """Indices of the requests whose arrivals open and close the steady-state window."""
    k = math.ceil(n / 8)
    return (k, n - k) if n - k > k else (0, n - 1)


@dataclass
class Timing:
    """One request, times relative to the first arrival."""

    arrival_s: float
    chunks: list[tuple[float, int]]  # (time, tokens) of each streamed chunk
    tokens: int
    input_tokens: int
    error: str = ""

    @property
    def first_s(self) -> float:
        return self.chunks[0][0] if self.chunks else math.nan

    @property
    def last_s(self) -> float:
        return self.chunks[-1][0] if self.chunks else math.nan

    @property
    def ttft_s(self) -> float:
        return self.first_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        return (self.last_s - self.first_s) / (self.tokens - 1) if self.tokens > 1 else math.nan

    @property
    def e2e_s(self) -> float:
        return self.last_s - self.arrival_s


def tokens_between(timings: list[Timing], start: float, end: float) -> int:
    return sum(n for t in timings for at, n in t.chunks if start <= at <= end)


def queue_max(timings: list[Timing]) -> int:
    """The most requests that had arrived (counting the one arriving) but not yet received a token, at any
    arrival instant."""
    firsts = np.array([t.first_s if t.chunks else np.inf for t in timings])
    arrivals = np.array([t.arrival_s for t in timings])
    return int(max(((arrivals <= a) & (firsts > a)).sum() for a in arrivals)) if len(timings) else 0


def latency_columns(timings: list[Timing]) -> dict:
    """p50 / p90 / p99 of TTFT, TPOT and end-to-end latency over the requests that finished."""
    out = {}
    for name in ("ttft", "tpot", "e2e"):
        values = np.array([getattr(t, f"{name}_s") for t in timings if t.chunks], dtype=float)
        values = values[~np.isnan(values)]
        for p in PERCENTILES:
            out[f"{name}_p{p}_s"] = float(np.percentile(values, p)) if len(values) else math.nan
    return out


SHORT_WINDOW = "steady window shorter than min_window_s"
EMPTY_WINDOW = "no token streamed in the steady window"


def rate_row(timings: list[Timing], rate: float, window: tuple[float, float], energy_j: float, *,
             batch_size: int, fallback: str, timed_out: bool) -> dict:
    """The serving row of one rate from its requests' timings and the window's energy; ``fallback``: why
    the window is the whole run (``SHORT_WINDOW``, ``EMPTY_WINDOW``), empty for the steady one. ``saturated``: at
    some arrival more requests waited for their first token than the server runs at once (``batch_size``),
    so requests queued: the rate is above what the server sustains."""
    start, end = window
    in_window = tokens_between(timings, start, end)
    mean_out = float(np.mean([t.tokens for t in timings])) if timings else math.nan
    per_token = energy_j / in_window if in_window else math.nan
    arrived = sum(1 for t in timings if start <= t.arrival_s <= end)
    queued = queue_max(timings)
    return {"rate_per_s": rate, "n_requests": len(timings), "n_in_window": arrived,
            "status": "timeout" if timed_out else "saturated" if queued > batch_size else "ok",
            "window": f"whole run ({fallback})" if fallback else "steady",
            "window_s": end - start, "energy_j": energy_j, "output_tokens_in_window": in_window,
            "energy_per_output_token_j": per_token, "energy_per_request_j": per_token * mean_out,
            "output_tok_s": in_window / (end - start) if end > start else math.nan,
            "queue_max": queued, **latency_columns(timings)}


def request_rows(timings: list[Timing], window: tuple[float, float], energy_j: float, rate: float,
                 prompt_weight: float = 1.0) -> list[dict]:
    """Per request: latencies, and its share of the window's energy, prefill and decode apart.

    The window's energy is split over the tokens each request had processed inside it: its prompt
    (counted at its first token, when its prefill is done) at ``prompt_weight`` output tokens per
    prompt token, and its output tokens as they streamed. ``prompt_weight`` is the ratio of a prompt
    token's energy to an output token's, from the cell's measured prefill/decode split
    (:func:`prompt_token_weight`); 1 splits by plain token counts.
    """
    start, end = window
    prefill = [prompt_weight * t.input_tokens if t.chunks and start <= t.first_s <= end else 0.0 for t in timings]
    decode = [sum(n for at, n in t.chunks if start <= at <= end) for t in timings]
    total = sum(prefill) + sum(decode)
    scale = energy_j / total if total else math.nan
    return [{"rate_per_s": rate, "request": k, "arrival_s": t.arrival_s, "input_tokens": t.input_tokens,
             "output_tokens": t.tokens, "ttft_s": t.ttft_s, "tpot_s": t.tpot_s, "e2e_s": t.e2e_s,
             "tokens_in_window": d + (t.input_tokens if p else 0), "prefill_energy_j": p * scale,
             "decode_energy_j": d * scale, "energy_share_j": (p + d) * scale, "prompt_weight": prompt_weight,
             "error": t.error} for k, (t, p, d) in enumerate(zip(timings, prefill, decode))]


def prompt_token_weight(measurements: pd.DataFrame | None, batch_size: int) -> float:
    """Energy of a prompt token over that of an output token, from a cell's measured rows: per row,
    (prefill energy / prompt tokens) / (decode energy / output tokens after the first), median over the
    valid rows at the batch size nearest ``batch_size``; 1 where nothing says otherwise."""
    if measurements is None or measurements.empty or "prefill_energy_j" not in measurements:
        return 1.0
    m = measurements[(measurements.get("status", "ok") == "ok") & (measurements["output_len"] > 1)]
    if "valid" in m:
        m = m[m["valid"].fillna(False).astype(bool)]
    m = m[(m["prefill_energy_j"] > 0) & (m["decode_energy_j"] > 0)]
    if m.empty:
        return 1.0
    m = m[(m["batch_size"] - batch_size).abs() == (m["batch_size"] - batch_size).abs().min()]
    per_prompt = m["prefill_energy_j"] / (m["batch_size"] * m["input_len"])
    per_output = m["decode_energy_j"] / (m["batch_size"] * (m["output_len"] - 1))
    return float((per_prompt / per_output).median())


def sweep_rate(backend, meter, prompts: list[list[int]], outs: list[int], rate: float, *, seed: int,
               timeout_s: float, min_window_s: float, batch_size: int,
               prompt_weight: float = 1.0) -> tuple[dict, list[dict]]:
    """Send the sample at one Poisson rate; the rate's row and its per-request rows."""
    arrivals = poisson_arrivals(len(prompts), rate, seed)
    k_open, k_close = window_requests(len(prompts))
    reads: dict[int, tuple[float, float]] = {}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        futures = []
        for k, (prompt, out) in enumerate(zip(prompts, outs)):
            time.sleep(max(0.0, t0 + arrivals[k] - time.perf_counter()))
            if k in (0, k_open, k_close):
                reads[k] = (time.perf_counter() - t0, meter.read())
            futures.append(pool.submit(backend.timed_request, prompt, out, timeout_s))
        done, late = wait(futures, timeout=max(1.0, timeout_s - (time.perf_counter() - t0)))
        reads[-1] = (time.perf_counter() - t0, meter.read())
    timings = []
    for k, f in enumerate(futures):
        try:
            r = f.result(timeout=0)
            chunks = [(at - t0, n) for at, n in r["chunks"]]
            timings.append(Timing(float(arrivals[k]), chunks, r["tokens"], len(prompts[k])))
        except Exception as exc:  # noqa: BLE001 - a request that failed or timed out is a row, not a crash
            timings.append(Timing(float(arrivals[k]), [], 0, len(prompts[k]), error=str(exc)[:200]))
    (start, e0), (end, e1) = reads[k_open], reads[k_close]
    # The whole run (first arrival to the last request's end) where the steady window is too short to
    # meter, or holds no streamed token (every request in it still queued or in its prefill: a high
    # rate on a slow machine), so that no energy per token or per request share is left undefined.
    reason = SHORT_WINDOW if end - start < min_window_s else \
        EMPTY_WINDOW if tokens_between(timings, start, end) == 0 else ""
    if reason:
        (start, e0), (end, e1) = reads[0], reads[-1]
    energy = e1 - e0
    timed_out = bool(late) or any(t.error for t in timings)
    return rate_row(timings, rate, (start, end), energy, batch_size=batch_size, fallback=reason,
                    timed_out=timed_out), \
        request_rows(timings, (start, end), energy, rate, prompt_weight)


def sweep(backend, meter, sample: pd.DataFrame, prompts: list[list[int]], rates: list[float], *, seed: int,
          timeout_s: float, min_window_s: float, batch_size: int,
          prompt_weight: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every rate of the sweep (after one warm-up of the first few requests); rows per rate and per request."""
    outs = sample["output_tokens"].astype(int).tolist()
    backend.serve(prompts[:4], outs[:4], 4)
    rows, requests = [], []
    for rate in rates:
        row, per_request = sweep_rate(backend, meter, prompts, outs, rate, seed=seed, timeout_s=timeout_s,
                                      min_window_s=min_window_s, batch_size=batch_size,
                                      prompt_weight=prompt_weight)
        log.info("rate %.3g/s: %s, %.3g J per request, TTFT p90 %.3g s, TPOT p90 %.3g s, e2e p90 %.3g s "
                 "(%s window %.1f s)", rate, row["status"], row["energy_per_request_j"], row["ttft_p90_s"],
                 row["tpot_p90_s"], row["e2e_p90_s"], row["window"], row["window_s"])
        rows.append(row)
        requests += per_request
    return pd.DataFrame(rows), pd.DataFrame(requests)


def serve_cell(cfg: dict, *, hardware: str, model: str, variant: str, decoding: str, model_dir, profile,
               out=None, requests_out=None, measurements=None, params: dict | None = None) -> pd.DataFrame:
    """The rate sweep of an online cell on the trace ``online.trace`` (its profile table ``profile``);
    writes ``out`` (a row per rate) and ``requests_out`` (a row per request and rate) when given.
    ``measurements``: the cell's checked table, whose prefill/decode split weighs prompt tokens.
    ``params``: what the job reads (the rule's params, :func:`llm_energy.pipeline.config.job_params`; default:
    from ``cfg``, which gives the model only)."""

    cell = cell_of(cfg, hardware, model, variant, decoding)
    p = params or job_params(cfg, cell, "serve")
    o, r, m, (top_in, top_out) = p["online"], p["replay"], p["measurement"], p["top_edges"]
    batch = m["batch_size"]
    job = cell_job(cfg, cell, CellParams((), m, p["decoding"], o), model_dir=model_dir, longest=top_in + top_out,
                   batch_size=batch)
    sample = sample_requests(pd.read_parquet(profile), r["n_requests"], r["seed"], top_in, top_out)
    prompts = prompts_for(sample, r["seed"])  # the replay stage's sample and prompts: its offline baseline
    weight = prompt_token_weight(pd.read_parquet(measurements) if measurements else None, batch)
    log.info("a prompt token costs %.3g output tokens' energy (the cell's prefill/decode split)", weight)
    with job:
        rows, requests = sweep(job.backend, job.meter, sample, prompts, list(o["rates"]), seed=r["seed"],
                               timeout_s=o["rate_timeout_s"], min_window_s=m["min_window_s"], batch_size=batch,
                               prompt_weight=weight)
        source = job.meter.describe()["energy_source"]
    labels = {"hardware": hardware, "model": model, "variant": variant, "decoding": decoding,
              "workload": o["trace"], "batch_size": batch, "energy_source": source}
    rows, requests = rows.assign(**labels), requests.assign(**labels)
    if out is not None:
        write_parquet(requests, requests_out)
        write_parquet(rows, out)
    return rows
