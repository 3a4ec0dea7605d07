"""Architectures from config, no download: the paper's shipped configs, any transformers type, MoE."""

from __future__ import annotations

import json

import pytest

from llm_energy import UserError
from llm_energy.models.build import (
    build_model,
    download_model,
    hf_config,
    model_facts,
)
from llm_energy.models.flops import Arch
from llm_energy.pipeline import config as cfgmod
from llm_energy.pipeline.architectures import read_architecture_file, shipped_architectures

PAPER = {"llama-3.1-8b": 8.03e9, "llama-3.2-1b": 1.24e9, "olmo-1b": 1.18e9, "olmo-7b": 6.89e9,
         "olmoe-1b-7b": 6.92e9, "qwen1.5-32b": 32.5e9, "deepseek-r1-distill-qwen-32b": 32.8e9}

SMALL_DENSE = {"model_type": "olmo", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
               "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256}
SMALL_MOE = {"model_type": "olmoe", "hidden_size": 128, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2,
             "max_position_embeddings": 256}


def test_every_paper_model_ships_with_its_source_and_size():
    shipped = shipped_architectures()
    assert set(PAPER) <= set(shipped)
    for name, total in PAPER.items():
        raw = json.loads(shipped[name].read_text())
        assert "huggingface.co" in raw["_source"]
        # Parameter count of the architecture equals the model card's, within 1 %.
        assert Arch.from_config(read_architecture_file(name)).parameters() == pytest.approx(total, rel=0.01), name
    olmoe = Arch.from_config(read_architecture_file("olmoe-1b-7b"))
    assert olmoe.active_parameters() == pytest.approx(1.28e9, rel=0.01)  # "1B active"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER))
def test_shipped_architecture_builds_at_reduced_depth_loads_and_generates(name, tmp_path):
    """Same widths and head layout as the paper's model, one layer: random weights, real generation.

    The vocabulary is cut to the shipped tokenizer's 32,000 here (neither a width nor the head
    layout; the full one is 5x the build time of a 32B-wide layer on two cores)."""
    import torch
    from transformers import AutoModelForCausalLM

    arch = {**read_architecture_file(name), "num_hidden_layers": 1, "vocab_size": 32000}
    out = build_model(tmp_path / name, arch, seed=0)
    facts = model_facts(out)
    assert facts["model_type"] == arch["model_type"]
    marker = json.loads((out / "llm_energy_build.json").read_text())
    assert marker["weights"] == "random"
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16).eval()
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == \
        (arch["hidden_size"], arch["num_attention_heads"], arch.get("num_key_value_heads", arch["num_attention_heads"]),
         arch["vocab_size"])
    n_matrix = sum(p.numel() for n, p in model.named_parameters() if "norm" not in n)
    assert n_matrix == facts["n_parameters"] == marker["n_parameters"] - sum(
        p.numel() for n, p in model.named_parameters() if "norm" in n)
    # Initialisation at the architecture's scale: std of a projection close to initializer_range.
    weight = next(p for n, p in model.named_parameters() if n.endswith("q_proj.weight")).float()
    assert weight.std().item() == pytest.approx(arch.get("initializer_range", 0.02), rel=0.1)
    ids = torch.randint(3, 32000, (1, 6))
    with torch.inference_mode():
        new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, min_new_tokens=3,
                             do_sample=False, pad_token_id=2)
    assert new.shape == (1, 9)


@pytest.mark.slow
def test_dense_and_moe_pair_match_active_parameters(tmp_path):
    dense = model_facts(build_model(tmp_path / "dense", SMALL_DENSE, seed=0))
    moe = model_facts(build_model(tmp_path / "moe", SMALL_MOE, seed=0))
    assert not dense["moe"] and moe["moe"]
    # Active MLP: 256 wide dense = 2 of 4 experts 128 wide; the router (128 x 4 per layer) is the difference.
    assert moe["n_active_parameters"] - dense["n_active_parameters"] == 2 * 128 * 4
    assert moe["n_parameters"] > dense["n_parameters"]


def test_unknown_architecture_key_and_type_are_one_line_errors():
    with pytest.raises(UserError, match="hiden_size not a llama config key"):
        hf_config({"hiden_size": 128})
    with pytest.raises(UserError, match="model_type 'lama' is not known"):
        hf_config({"model_type": "lama"})
    with pytest.raises(UserError, match="smaller than the tokenizer"):
        hf_config({"vocab_size": 1000})


def test_special_ids_follow_the_shipped_tokenizer():
    cfg = hf_config(read_architecture_file("llama-3.1-8b"))
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.vocab_size) == (1, 2, 128256)


def _config(**models):
    return {"models": models, "workloads": {"w": {"file": "w.csv", "input_column": "a", "output_column": "b"}},
            "cells": [{"model": next(iter(models)), "variants": ["transformers-eager"], "points": ["batch"]}]}


def test_architecture_file_with_overrides_in_the_config():
    cfg = cfgmod.validate(_config(big={"source": "build", "architecture_file": "olmoe-1b-7b",
                                       "architecture": {"num_hidden_layers": 2}}))
    arch = cfgmod.architecture(cfg["models"]["big"])
    assert arch["num_hidden_layers"] == 2 and arch["num_experts"] == 64
    assert cfgmod.max_model_len(cfg, "big") == 4096
    with pytest.raises(UserError, match="neither a shipped one"):
        cfgmod.validate(_config(big={"source": "build", "architecture_file": "llama-9"}))


def test_model_sources_and_draft_are_checked():
    with pytest.raises(UserError, match="models.h.hub_id is required"):
        cfgmod.validate(_config(h={"source": "hub"}))
    raw = _config(a={"source": "build", "architecture_file": "llama-3.2-1b"})
    raw["cells"][0]["decoding"] = ["speculative"]
    with pytest.raises(UserError, match="needs models.a.draft_model"):
        cfgmod.validate(raw)
    raw["models"]["a"]["draft_model"] = "nope"
    with pytest.raises(UserError, match="draft_model: 'nope' is not another model"):
        cfgmod.validate(raw)


def test_hub_download_offline_says_what_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = tmp_path / "models" / "llama"
    with pytest.raises(UserError, match=f"place the model folder .* at {target}"):
        download_model(target, "meta-llama/Llama-3.1-8B")
    assert not target.exists() and list((tmp_path / "models").iterdir()) == []
