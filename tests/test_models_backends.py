"""Real transformers and real vLLM (CPU build) on a model built here, generating real tokens."""

import json

import pytest

from llm_energy import UserError
from llm_energy.backends import make_backend
from llm_energy.measure import Point, run_cell, synthetic_prompts
from llm_energy.models import VOCAB_SIZE, check_model_dir, weights_kind

pytestmark = pytest.mark.slow


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

    from llm_energy.models import build_model

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


def test_vllm_generates_exact_lengths(vllm_backend):
    point = Point(24, 7, 4)
    result = vllm_backend.run(synthetic_prompts(point, 0, 0), point.output_len)
    assert result.output_tokens == [7, 7, 7, 7]


def test_run_cell_rows_with_vllm(vllm_backend):
    class Loaded:  # the session engine is already loaded; run_cell must not load it twice
        def __init__(self, inner):
            self.inner = inner
            self.model_dir, self.variant = inner.model_dir, inner.variant

        def load(self):
            pass

        def close(self):
            pass

        def __getattr__(self, name):
            return getattr(self.inner, name)

    points = [Point(32, 4, 1), Point(32, 16, 2)]
    df = run_cell(Loaded(vllm_backend), points, meter_kind="cpu-estimate", repeats=2, warmup_batches=1,
                  idle_s=0.2, min_window_s=0.2, labels={"model": "tiny"})
    assert len(df) == 4
    assert (df["energy_j"] > 0).all() and (df["duration_s"] > 0).all()
    assert (df["output_tokens"] == df["output_len"] * df["batch_size"]).all()
    assert ((df["decode_energy_j"] - (df["energy_j"] - df["prefill_energy_j"])).abs() < 1e-9).all()
    assert (df["n_batches_in_window"] >= 1).all()
    assert set(df["energy_source"]) == {"cpu-estimate"} and set(df["framework"]) == {"vllm"}
    # Longer generations cost more: 16 tokens x 2 requests against 4 tokens x 1.
    mean = df.groupby("output_len")["energy_j"].mean()
    assert mean[16] > mean[4]
