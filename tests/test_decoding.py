"""Every decoding strategy and framework variant, for real on CPU: transformers (eager, compiled) and
vLLM (eager, compiled, online server), each request generating exactly its output length."""

from __future__ import annotations

import os
import urllib.request

import pytest
from conftest import Loaded

from llm_energy.measurement.backends import DECODINGS, Unsupported, make_backend
from llm_energy.measurement.loop import run_cell, synthetic_prompts
from llm_energy.measurement.protocol import Point, Protocol

SAMPLERS = ("greedy", "temperature", "top-p")


def _exact(backend, batch_sizes=(1, 3), output_len=6, input_len=20):
    for b in batch_sizes:
        point = Point(input_len, output_len, b)
        assert backend.run(synthetic_prompts(point, 0, 0), output_len).output_tokens == [output_len] * b, \
            (backend.variant, backend.decoding, b)


@pytest.fixture(scope="module")
def hf_backends(tiny_model, draft_model):
    """One loaded transformers backend per (variant, decoding)."""
    made = {}
    for variant in ("transformers-eager", "transformers-compile"):
        for decoding in DECODINGS:
            b = make_backend(variant, str(tiny_model), dtype="float32", decoding=decoding, draft_dir=str(draft_model),
                             decoding_options={"beam_width": 3})
            b.load()
            made[variant, decoding] = b
    yield made
    for b in made.values():
        b.close()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["transformers-eager", "transformers-compile"])
@pytest.mark.parametrize("decoding", ["greedy", "beam", "temperature", "top-p"])
def test_transformers_decoding_exact_lengths(hf_backends, variant, decoding):
    _exact(hf_backends[variant, decoding])


@pytest.mark.slow
def test_transformers_speculative_is_assisted_generation_at_batch_one(hf_backends):
    spec = hf_backends["transformers-eager", "speculative"]
    assert spec.draft is not None and spec.describe()["num_speculative_tokens"] == 4
    _exact(spec, batch_sizes=(1,), output_len=9)
    with pytest.raises(Unsupported, match="one request at a time"):
        spec.run([[5] * 8] * 2, 4)
    with pytest.raises(Unsupported, match="static KV cache"):
        hf_backends["transformers-compile", "speculative"].run([[5] * 8], 4)


def test_sampling_is_seeded(tiny_model):
    """The same seed draws the same tokens (checked on the generated ids), another seed others."""
    import torch

    def tokens(seed):
        b = make_backend("transformers-eager", str(tiny_model), dtype="float32", decoding="temperature", seed=seed,
                         decoding_options={"temperature": 5.0})
        b.load()
        ids = torch.tensor([[5] * 10])
        return b._generate(ids, torch.ones_like(ids), 12)[0, 10:].tolist()

    assert tokens(0) == tokens(0)
    assert tokens(0) != tokens(1)


@pytest.mark.slow
def test_unsupported_point_is_a_row_and_the_sweep_goes_on(hf_backends):
    protocol = Protocol.of(meter="cpu-estimate", repeats=1, warmup_batches=1, idle_s=0.1, min_window_s=0.05,
                           pause_s=0, examples_per_point=0, examples_per_point_large_batch=0)
    df, _ = run_cell(Loaded(hf_backends["transformers-eager", "speculative"]),
                     [Point(16, 4, 1, "sweep"), Point(16, 4, 2, "sweep")], protocol)
    by_batch = df.set_index("batch_size")
    assert by_batch.loc[1, "status"] == "ok" and by_batch.loc[1, "output_tokens"] == 4
    assert by_batch.loc[2, "status"] == "unsupported" and "one request" in by_batch.loc[2, "reason"]
    assert (df["num_speculative_tokens"] == 4).all() and (df["draft_model_dir"] != "").all()


@pytest.mark.slow
def test_compiled_rows_say_so_and_warmup_compiles_the_prefill_shape(hf_backends):
    """The prefill shape (one new token) is compiled in warm-up: its metered window is not a compile."""
    backend = hf_backends["transformers-compile", "greedy"]
    protocol = Protocol.of(meter="cpu-estimate", repeats=1, warmup_batches=1, idle_s=0.1, min_window_s=0.0,
                           pause_s=0, examples_per_point=0, examples_per_point_large_batch=0)
    df, _ = run_cell(Loaded(backend), [Point(24, 5, 2, "sweep")], protocol)
    row = df.iloc[0]
    assert row["compile_mode"] == "default" and row["status"] == "ok"
    # A compile takes seconds; a compiled 1-token batch of this model takes milliseconds.
    assert row["prefill_duration_s"] < 1.0, row["prefill_duration_s"]


# vLLM ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_vllm_sampling_strategies_exact_lengths(vllm_backend):
    """greedy, temperature and top-p share one engine (they differ only in sampling parameters)."""
    try:
        for decoding in SAMPLERS:
            vllm_backend.decoding = decoding
            _exact(vllm_backend)
            assert vllm_backend.serve([[5] * 9, [6] * 30, [7] * 4], [2, 7, 3], batch_size=2) == [2, 7, 3]
    finally:
        vllm_backend.decoding = "greedy"


def test_vllm_sampling_parameters():
    from llm_energy.measurement.backends.vllm import sampling_kwargs

    b = make_backend("vllm-eager", "m", decoding="top-p", decoding_options={"top_p": 0.8})
    assert sampling_kwargs(b, 5) == {"max_tokens": 5, "min_tokens": 5, "ignore_eos": True, "temperature": 1.0,
                                     "top_p": 0.8, "top_k": 0}
    b.decoding = "temperature"
    assert sampling_kwargs(b, 5)["temperature"] == 0.7 and sampling_kwargs(b, 5)["top_p"] == 1.0


@pytest.fixture(scope="module")
def vllm_beam(tiny_model):
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    b = make_backend("vllm-eager", str(tiny_model), decoding="beam", max_model_len=1024, max_batch_size=3,
                     decoding_options={"beam_width": 2})
    b.load()
    yield b
    b.close()


@pytest.mark.slow
def test_vllm_beam_search_exact_lengths_and_fresh_prompts(vllm_beam):
    assert vllm_beam.prefix_caching  # vLLM's beam search needs the prompt cache ...
    _exact(vllm_beam, batch_sizes=(1, 2), output_len=4)
    # ... so a metered window gives every batch its own prompts: no batch skips its prefill.
    seen = []
    real_run = vllm_beam.run

    class Spy(Loaded):
        def run(self, prompts, output_len):
            seen.append((tuple(map(tuple, prompts)), output_len))
            return real_run(prompts, output_len)

    protocol = Protocol.of(meter="cpu-estimate", repeats=1, warmup_batches=0, idle_s=0.1, examples_per_point=3,
                           pause_s=0, min_window_s=0, examples_per_point_large_batch=0)
    df, _ = run_cell(Spy(vllm_beam), [Point(12, 3, 1, "sweep")], protocol)
    assert df["status"].tolist() == ["ok"] and df["n_batches_in_window"].iloc[0] == 3
    assert len(set(seen)) == len(seen) == 6  # 3 full + 3 prefill batches, all different prompts


@pytest.fixture(scope="module")
def vllm_compiled_speculative(tiny_model, draft_model):
    """vllm-cudagraph (compilation on; no CUDA graphs on CPU) with speculative decoding: one engine
    covers the non-eager path and the draft model."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    b = make_backend("vllm-cudagraph", str(tiny_model), decoding="speculative", draft_dir=str(draft_model),
                     max_model_len=1024, max_batch_size=3)
    b.load()
    yield b
    b.close()


@pytest.mark.slow
def test_vllm_compiled_speculative_exact_lengths(vllm_compiled_speculative):
    b = vllm_compiled_speculative
    info = b.describe()
    assert info["enforce_eager"] is False and info["num_speculative_tokens"] == 4
    assert b.llm.llm_engine.vllm_config.speculative_config.num_speculative_tokens == 4
    before = b.spec_counts()
    _exact(b, batch_sizes=(1, 3), output_len=9)
    assert b.serve([[5] * 9, [6] * 30, [7] * 4], [2, 7, 3], batch_size=2) == [2, 7, 3]
    # The engine's own spec-decode counters: proposals were made (4 per step per request) and counted.
    proposed, accepted = (a - z for a, z in zip(b.spec_counts(), before))
    assert proposed >= 4 * 8 and 0 <= accepted <= proposed, (proposed, accepted)


@pytest.fixture(scope="module")
def vllm_server(tiny_model):
    """A real vLLM OpenAI server on a free loopback port; stopped (with its workers) at the end."""
    pytest.importorskip("vllm")
    b = make_backend("vllm-online", str(tiny_model), decoding="beam", max_model_len=1024, max_batch_size=3,
                     decoding_options={"beam_width": 2}, startup_timeout_s=300)
    b.load()
    yield b
    from llm_energy.measurement.backends.vllm_online import group_alive

    pid = b.proc.pid
    assert group_alive(pid)
    b.close()
    assert b.proc is None and not group_alive(pid)  # the server and every process it started are gone


@pytest.mark.slow
def test_online_rate_sweep_on_a_real_server_records_latency_and_energy(vllm_server):
    """Three Poisson rates of a trace-like sample through the real server: every request streams its
    exact length, every rate has latency percentiles and a metered window, per-request shares add up."""
    import pandas as pd

    from llm_energy.measurement.meters import make_meter
    from llm_energy.online.sweep import sweep

    sample = pd.DataFrame({"input_tokens": [30, 12, 50, 8, 20, 40, 16, 24], "output_tokens": [6, 3, 9, 2, 5, 7, 4, 8]})
    prompts = [[5 + k] * n for k, n in enumerate(sample["input_tokens"])]
    vllm_server.decoding = "greedy"
    try:
        rows, requests = sweep(vllm_server, make_meter("cpu-estimate"), sample, prompts, [1.0, 4.0, 16.0], seed=0,
                               timeout_s=120, min_window_s=0.0, batch_size=3)
    finally:
        vllm_server.decoding = "beam"
    assert list(rows["rate_per_s"]) == [1.0, 4.0, 16.0]
    assert set(rows["status"]) <= {"ok", "saturated"} and (rows["energy_j"] > 0).all()
    for col in ("ttft_p50_s", "ttft_p99_s", "e2e_p50_s", "e2e_p99_s"):
        assert (rows[col] > 0).all(), col
    # TPOT is (last chunk - first chunk) / (tokens - 1), as the field's serving benchmarks define it. The
    # server streams a tiny model's tokens faster than its API process sends them, so it merges them into
    # fewer chunks; a request whose tokens all came in one chunk has TPOT 0 (a CI run read p50 = 0 at 16/s).
    assert (rows["tpot_p50_s"] >= 0).all() and (requests["tpot_s"].dropna() >= 0).all()
    streamed = requests.dropna(subset=["ttft_s", "e2e_s"])
    assert len(streamed) == len(requests) and (streamed["e2e_s"] >= streamed["ttft_s"]).all()
    assert (rows["e2e_p99_s"] >= rows["ttft_p99_s"]).all()
    assert (requests.groupby("rate_per_s")["output_tokens"].apply(list) == [list(sample["output_tokens"])] * 3).all()
    shares = requests.groupby("rate_per_s")["energy_share_j"].sum()
    assert shares.to_numpy() == pytest.approx(rows["energy_j"].to_numpy())
    # The slowest rate spreads 8 requests over ~7 s: its window is the longest.
    assert rows["window_s"].iloc[0] > rows["window_s"].iloc[2]


@pytest.mark.slow
def test_online_server_every_decoding_exact_lengths(vllm_server):
    with urllib.request.urlopen(vllm_server.url + "/health", timeout=5) as r:
        assert r.status == 200
    try:
        for decoding in (*SAMPLERS, "beam"):
            vllm_server.decoding = decoding
            _exact(vllm_server, batch_sizes=(1, 3), output_len=5)
            assert vllm_server.serve([[5] * 9, [6] * 30, [7] * 4], [2, 7, 3], batch_size=2) == [2, 7, 3]
    finally:
        vllm_server.decoding = "beam"


@pytest.mark.slow
def test_online_window_streams_all_batches_with_capped_concurrency(vllm_server):
    import threading

    vllm_server.decoding = "greedy"
    in_flight, peak, calls, lock = [0], [0], [0], threading.Lock()
    real = vllm_server._complete
    # The first two requests wait for each other (30 s at most) before they go out: with two allowed in
    # flight both get there and the peak is 2 whatever the machine's speed; with one allowed, the second
    # never comes while the first waits, the wait times out and the peak stays 1. Without it a 4-token
    # request could finish before the pool's second thread started and the peak read 1 on a busy machine.
    both = threading.Barrier(2, timeout=30)

    def counting(prompt, length):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            calls[0] += 1
            first_two = calls[0] <= 2
        try:
            if first_two:
                try:
                    both.wait()
                except threading.BrokenBarrierError:
                    pass
            return real(prompt, length)
        finally:
            with lock:
                in_flight[0] -= 1

    vllm_server._complete = counting
    try:
        result = vllm_server.run_many([[5] * 16, [6] * 16], 4, 5)  # 10 requests, 2 at a time
    finally:
        del vllm_server._complete
        vllm_server.decoding = "beam"
    assert result.output_tokens == [4, 4]
    assert calls[0] == 10 and peak[0] == 2


def test_poisson_arrivals_are_spaced(tiny_model):
    """The arrival process, without a server: exponential gaps at the configured rate."""
    import time

    b = make_backend("vllm-online", str(tiny_model), arrival="poisson", rate_per_s=50.0, seed=0)
    sent = []
    b._complete = lambda prompt, length: sent.append(time.perf_counter()) or length
    t0 = time.perf_counter()
    assert b.serve([[1]] * 40, [3] * 40, batch_size=4) == [3] * 40
    elapsed = time.perf_counter() - t0
    assert 0.4 < elapsed < 2.5  # 39 gaps of 1/50 s on average = 0.78 s


def test_server_command_carries_the_engine_settings(tiny_model, draft_model):
    from llm_energy.measurement.backends.vllm import engine_args
    from llm_energy.measurement.backends.vllm_online import server_command

    b = make_backend("vllm-online-tp2", str(tiny_model), decoding="speculative", draft_dir=str(draft_model),
                     max_model_len=512, max_batch_size=8)
    cmd = server_command(engine_args(b), 8123)
    joined = " ".join(cmd)
    assert "--tensor-parallel-size 2" in joined and "--enforce-eager" in cmd and "--port 8123" in joined
    assert "--no-enable-prefix-caching" in cmd and "--max-num-seqs 8" in joined
    assert '"num_speculative_tokens": 4' in joined and str(draft_model) in joined
    # drain at stop, not vLLM's abort (whose kill of the engine core logged an EngineDeadError traceback)
    assert cmd[cmd.index("--shutdown-timeout") + 1] == "10"


# Speculative decoding's acceptance ------------------------------------------------------------------


@pytest.mark.slow
def test_transformers_acceptance_is_one_when_the_draft_is_the_target(tiny_model):
    """Greedy assisted generation whose draft is the target itself: every proposed token is accepted."""
    b = make_backend("transformers-eager", str(tiny_model), dtype="float32", decoding="speculative",
                     draft_dir=str(tiny_model))
    b.load()
    before = b.spec_counts()
    assert before == (0, 0)
    assert b.run(synthetic_prompts(Point(20, 13, 1), 0, 0), 13).output_tokens == [13]
    proposed, accepted = b.spec_counts()
    assert proposed >= 8 and accepted == proposed, (proposed, accepted)
    assert max(b._calls_len[1:]) == 1 + 4  # the look-ahead asked (num_speculative_tokens), not the draft's default


@pytest.mark.slow
def test_transformers_prompt_lookup_proposes_from_the_prompt_and_counts(tiny_model):
    """Prompt lookup (no draft model): exact lengths, proposals counted, one request at a time."""
    b = make_backend("transformers-eager", str(tiny_model), dtype="float32", decoding="prompt-lookup")
    b.load()
    assert b.draft is None and b.describe()["speculative_method"] == "ngram"
    prompt = [list(range(100, 110)) * 4]  # a repeating text: every bigram of it has a continuation
    assert b.run(prompt, 10).output_tokens == [10]
    proposed, accepted = b.spec_counts()
    assert proposed > 0 and 0 <= accepted <= proposed
    with pytest.raises(Unsupported, match="one request at a time"):
        b.run(prompt * 2, 4)


def test_acceptance_of_a_window_is_unknown_not_zero_without_counters():
    from llm_energy.measurement.loop import acceptance

    assert acceptance((10, 4), (30, 14), "prompt-lookup")["acceptance_rate"] == pytest.approx(0.5)
    unknown = acceptance(None, None, "speculative")
    assert unknown["acceptance_rate"] != unknown["acceptance_rate"]  # NaN
    assert unknown["acceptance_note"].startswith("unknown")
    assert acceptance((3, 1), (3, 1), "speculative")["acceptance_note"] == "no draft token proposed in the window"
    assert acceptance(None, None, "greedy") == {}


def test_vllm_spec_counters_are_read_from_the_engine_metrics():
    from types import SimpleNamespace as M

    from llm_energy.measurement.backends.vllm import spec_counters

    metrics = [M(name="vllm:spec_decode_num_draft_tokens", value=236), M(name="vllm:num_requests", value=3),
               M(name="vllm:spec_decode_num_accepted_tokens", value=102)]
    assert spec_counters(metrics) == (236, 102)
    assert spec_counters(metrics[:2]) is None and spec_counters(None) is None
