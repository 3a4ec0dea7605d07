"""Replay validation: serve a seeded sample of a trace's requests with their true lengths, meter the
whole run, and compare with the binned estimate of the same sample.

The binned estimate rounds every request up to its bin and divides batches fractionally; a real
server pads static batches to their longest request (transformers) or schedules continuously (vLLM).
The error says how far the paper's method is from serving the trace.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from .binning import bin_requests
from .estimate import binned_estimate
from .measure import FIRST_TEXT_TOKEN, VOCAB_SIZE

log = logging.getLogger(__name__)


def sample_requests(profile: pd.DataFrame, n: int, seed: int, max_input: int, max_output: int) -> pd.DataFrame:
    """A seeded sample (in trace order) of the requests the binning includes (within the top edges)."""
    inside = profile[(profile["input_tokens"] <= max_input) & (profile["output_tokens"] <= max_output)
                     & (profile["input_tokens"] > 0)]
    n = min(n, len(inside))
    picked = np.sort(np.random.default_rng(seed).choice(len(inside), size=n, replace=False))
    return inside.iloc[picked].reset_index(drop=True)


def prompts_for(sample: pd.DataFrame, seed: int) -> list[list[int]]:
    rng = np.random.default_rng([seed, 7])
    return [rng.integers(FIRST_TEXT_TOKEN, VOCAB_SIZE, size=int(i)).tolist() for i in sample["input_tokens"]]


def replay(backend, meter, sample: pd.DataFrame, batch_size: int, seed: int) -> dict:
    """Serve the sample once (after one warm-up batch) inside one metered window."""
    prompts = prompts_for(sample, seed)
    outs = sample["output_tokens"].astype(int).tolist()
    t0 = time.perf_counter()
    backend.serve(prompts[:batch_size], outs[:batch_size], batch_size)  # warm-up
    log.info("replay: warm-up of %d requests in %.1f s; serving %d requests (%d output tokens) at batch %d",
             min(batch_size, len(prompts)), time.perf_counter() - t0, len(prompts), sum(outs), batch_size)
    with meter.window() as w:
        tokens = backend.serve(prompts, outs, batch_size)
    log.info("replay: served %d requests, %d tokens in %.1f s, %.1f J (%s)", len(prompts), sum(tokens),
             w.duration_s, w.energy_j, w.energy_source)
    short = [(t, o) for t, o in zip(tokens, outs) if t < o]
    if short:
        raise RuntimeError(f"replay: {len(short)} request(s) generated fewer tokens than their true length")
    return {"n_requests": len(sample), "replay_energy_j": w.energy_j, "replay_duration_s": w.duration_s,
            "replay_tokens_generated": int(sum(tokens)), "replay_tokens_requested": int(sum(outs)),
            "energy_source": w.energy_source, "batch_size": batch_size}


def compare(sample: pd.DataFrame, measurements: pd.DataFrame, input_edges, output_edges) -> dict:
    """The binned estimate of the same sample, from the cell's grid measurements."""
    bins, summary = bin_requests(sample, input_edges, output_edges)
    per_bin = binned_estimate(bins, measurements)
    return {"estimate_energy_j": float(per_bin["energy_j"].sum()),
            "estimate_whole_batches_energy_j": float(per_bin["energy_whole_batches_j"].sum()),
            "n_bins": int(len(per_bin)), "n_excluded": summary["n_excluded"]}
