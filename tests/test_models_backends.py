"""Real transformers and real vLLM (CPU build) on a model built here, generating real tokens."""

import json
import os

import pytest

from llm_energy import UserError
from llm_energy.measurement.backends import make_backend
from llm_energy.measurement.loop import run_cell, synthetic_prompts
from llm_energy.measurement.protocol import Point, Protocol
from llm_energy.models.build import VOCAB_SIZE, check_model_dir, weights_kind


def test_built_model_has_real_tokenizer_and_random_weights(tiny_model):
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert len(tok) == VOCAB_SIZE
    text = "The energy cost of inference grows with the output length."
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and 8 < len(ids) < 30
    assert tok.decode(ids, skip_special_tokens=True) == text
    cfg = AutoConfig.from_pretrained(tiny_model)
    assert cfg.hidden_size // cfg.num_attention_heads == 64
    assert weights_kind(tiny_model) == "random"
    assert json.loads((tiny_model / "llm_energy_build.json").read_text())["seed"] == 0


def test_same_seed_same_weights(tiny_model, tmp_path):
    from conftest import TINY_ARCH

    from llm_energy.models.build import build_model

    again = build_model(tmp_path / "again", TINY_ARCH, seed=0)
    other = build_model(tmp_path / "other", TINY_ARCH, seed=1)
    weights = (tiny_model / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights


def test_model_folder_without_weights_is_one_clear_error(tiny_model, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model / "config.json").read_text())
    with pytest.raises(UserError, match="has no weights"):
        check_model_dir(broken)


@pytest.mark.parametrize("point", [Point(16, 5, 3), Point(40, 1, 1)])
def test_transformers_generates_exact_lengths(tiny_model, point):
    backend = make_backend("transformers-eager", str(tiny_model), dtype="float32")
    backend.load()
    result = backend.run(synthetic_prompts(point, 0, 0), point.output_len)
    assert result.output_tokens == [point.output_len] * point.batch_size


@pytest.mark.slow
def test_vllm_generates_exact_lengths(vllm_backend):
    point = Point(24, 7, 4)
    result = vllm_backend.run(synthetic_prompts(point, 0, 0), point.output_len)
    assert result.output_tokens == [7, 7, 7, 7]


@pytest.mark.slow
def test_run_cell_rows_with_vllm(vllm_backend):
    from conftest import Loaded  # the session engine is already loaded; run_cell must not load it twice
    points = [Point(32, 4, 1), Point(32, 16, 2)]
    protocol = Protocol.of(meter="cpu-estimate", repeats=2, warmup_batches=1, idle_s=0.2, min_window_s=0.2,
                           pause_s=0, examples_per_point=0, examples_per_point_large_batch=0)
    df, _ = run_cell(Loaded(vllm_backend), points, protocol, labels={"model": "tiny"})
    assert len(df) == 4
    assert (df["energy_j"] > 0).all() and (df["duration_s"] > 0).all()
    assert (df["output_tokens"] == df["output_len"] * df["batch_size"]).all()
    assert ((df["decode_energy_j"] - (df["energy_j"] - df["prefill_energy_j"])).abs() < 1e-9).all()
    assert (df["n_batches_in_window"] >= 1).all()
    assert set(df["energy_source"]) == {"cpu-estimate"} and set(df["framework"]) == {"vllm"}
    # Longer generations cost more: 16 tokens x 2 requests against 4 tokens x 1.
    mean = df.groupby("output_len")["energy_j"].mean()
    assert mean[16] > mean[4]


def test_transformers_serves_static_padded_batches(tiny_model):
    backend = make_backend("transformers-eager", str(tiny_model), dtype="float32")
    backend.load()
    prompts = [[5] * 7, [6] * 12, [7] * 3]
    # Batch of 2 then 1: the first batch runs to its longest request (4), the second to its own (2).
    assert backend.serve(prompts, [1, 4, 2], batch_size=2) == [4, 4, 2]


def test_padded_point_is_a_left_padded_batch_of_different_lengths(tiny_model):
    """A point of role ``padded`` runs batches of the lengths ``padded_lengths`` gives (longest = its
    input length) through the backend's padded path, warm-up, full and prefill windows alike."""
    from llm_energy.measurement.protocol import padded_lengths

    backend = make_backend("transformers-eager", str(tiny_model), dtype="float32")
    seen = []
    backend.run = lambda *a, **k: pytest.fail("a padded point must not run equal-length batches")
    inner = backend.run_padded
    backend.run_padded = lambda prompts, n: (seen.append(([len(p) for p in prompts], n)), inner(prompts, n))[1]
    # Windows of 0.2 s (several batches each): one 10-ms-tick window of a single small batch is noise, and
    # a scheduling hiccup in it once made a prefill window cost more than the full run.
    protocol = Protocol.of(meter="cpu-estimate", repeats=2, warmup_batches=1, idle_s=0.1, min_window_s=0.2,
                           pause_s=0, examples_per_point=0, examples_per_point_large_batch=0)
    df, _ = run_cell(backend, [Point(32, 4, 3, "padded")], protocol, labels={"model": "tiny"})
    assert padded_lengths(32, 3) == [11, 21, 32] and padded_lengths(64, 4) == [16, 32, 48, 64]
    assert {tuple(lengths) for lengths, _ in seen} == {(11, 21, 32)}
    assert sorted({n for _, n in seen}) == [1, 4]  # prefill windows (one token) and full runs
    assert list(df["role"]) == ["padded", "padded"] and (df["output_tokens"] == 12).all()
    assert (df["energy_j"] > df["prefill_energy_j"]).all() and (df["prefill_energy_j"] > 0).all()


@pytest.mark.slow
def test_vllm_serves_each_request_its_own_length(vllm_backend):
    prompts = [[5] * 7, [6] * 12, [7] * 3]
    assert vllm_backend.serve(prompts, [1, 4, 2], batch_size=2) == [1, 4, 2]


def test_replay_sample_is_seeded_and_within_the_top_edges():
    import pandas as pd

    from llm_energy.estimates.replay import sample_requests

    profile = pd.DataFrame({"input_tokens": range(1, 201), "output_tokens": [5, 900] * 100})
    a = sample_requests(profile, 20, seed=3, max_input=150, max_output=512)
    b = sample_requests(profile, 20, seed=3, max_input=150, max_output=512)
    assert a.equals(b) and len(a) == 20
    assert (a["input_tokens"] <= 150).all() and (a["output_tokens"] <= 512).all()
    assert a["input_tokens"].is_monotonic_increasing  # trace order kept
    assert len(sample_requests(profile, 1000, seed=3, max_input=150, max_output=512)) == 75


IN_PROCESS_SCRIPT = """
import json, os, sys
import psutil
from llm_energy.measurement.backends import make_backend

if __name__ == "__main__":
    b = make_backend("vllm-eager", sys.argv[1], dtype="bfloat16", max_model_len=256, max_batch_size=2)
    b.load()
    tokens = b.run([[5] * 20, [6] * 20], 6).output_tokens
    children = psutil.Process().children(recursive=True)
    print(json.dumps({"in_process": b.describe()["engine_in_process"], "tokens": tokens,
                      "children": len(children), "env": os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")}))
    b.close()
"""


@pytest.mark.slow
def test_vllm_engine_in_process_on_cpu(tiny_model, tmp_path):
    """A measurement job's vLLM engine on CPU runs in the job's process: no engine-core or worker
    process (whose polling the CPU estimate would count), the environment as it was afterwards."""
    import os
    import subprocess
    import sys

    pytest.importorskip("vllm")
    script = tmp_path / "engine.py"
    script.write_text(IN_PROCESS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    env.update(PYTHONPATH=os.pathsep.join(sys.path), VLLM_CPU_KVCACHE_SPACE="1")
    out = subprocess.run([sys.executable, str(script), str(tiny_model)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"in_process": True, "tokens": [6, 6], "children": 0, "env": None}


def test_cpu_engines_use_vllms_standard_compile_cache_unless_the_environment_chose(monkeypatch):
    """vLLM 0.32's AOT compile cache does not load back on CPU (every compiled engine compiled again);
    its standard cache does. A user's own choice stays."""
    from llm_energy.measurement.backends.vllm import _SCHEDULER_THREAD_VARS, AOT_COMPILE_VAR, prepare_cpu_environment

    for var in (*_SCHEDULER_THREAD_VARS, "VLLM_CPU_KVCACHE_SPACE"):  # which it clears or sets: restored after
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
    monkeypatch.delenv(AOT_COMPILE_VAR, raising=False)
    prepare_cpu_environment(1.0)
    assert os.environ[AOT_COMPILE_VAR] == "0"
    monkeypatch.setenv(AOT_COMPILE_VAR, "1")
    prepare_cpu_environment(1.0)
    assert os.environ[AOT_COMPILE_VAR] == "1"
