"""FLOPs from the architecture config against torch's own counter on real generate() calls."""

import pytest
import torch

from llm_energy.models.flops import Arch, decode_flops, generation_flops, prefill_flops


def _counted(model, input_len, output_len, batch):
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.randint(3, model.config.vocab_size, (batch, input_len))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=output_len,
                             min_new_tokens=output_len, pad_token_id=0)
    assert out.shape[1] == input_len + output_len
    return counter.get_total_flops()


def _llama(**kw):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=320, num_hidden_layers=2,
                      num_attention_heads=4, max_position_embeddings=256, **kw)
    cfg._attn_implementation = "eager"
    return LlamaForCausalLM(cfg).eval()


def _moe():
    from transformers import MixtralConfig, MixtralForCausalLM

    cfg = MixtralConfig(vocab_size=1000, hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                        max_position_embeddings=256)
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"  # the fused default is invisible to the torch counter
    return MixtralForCausalLM(cfg).eval()


@pytest.mark.parametrize("make, shape", [
    (lambda: _llama(num_key_value_heads=4), (24, 6, 2)),  # dense, multi-head
    (lambda: _llama(num_key_value_heads=1), (40, 3, 1)),  # grouped-query (one KV head)
    (_moe, (16, 5, 3)),                                   # mixture of experts, 2 of 8 active
])
def test_generation_flops_match_torch_counter(make, shape):
    torch.manual_seed(0)
    model = make()
    arch = Arch.from_config(model.config.to_dict())
    expected = _counted(model, *shape)
    assert generation_flops(arch, *shape) == pytest.approx(expected, rel=0.02)


def test_prefill_decode_split_and_causal_half():
    arch = Arch(hidden=64, layers=1, heads=1, kv_heads=1, head_dim=64, vocab=10, intermediate=64)
    assert generation_flops(arch, 8, 1) == prefill_flops(arch, 8)  # one token comes from the prefill
    assert decode_flops(arch, 8, 3) == 2 * (arch.linear_per_token() + arch.lm_head()) + arch.attention_scores(1, 9 + 10)
    assert prefill_flops(arch, 8, causal_half=True) < prefill_flops(arch, 8)


def test_cli_prints_flops(tmp_path, capsys):
    import json

    from llm_energy.__main__ import main

    model = _llama(num_key_value_heads=2)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(model.config.to_dict()))
    assert main(["flops", "--model-config", str(path), "--input-len", "24", "--output-len", "6", "--batch", "2"]) == 0
    printed = capsys.readouterr().out
    assert str(generation_flops(Arch.from_file(path), 24, 6, 2)) in printed


@pytest.mark.parametrize("shape, named", [
    ((-5, 4, 1), "input_len must be at least 1, got -5"),
    ((0, 4, 1), "input_len must be at least 1, got 0"),
    ((8, -1, 1), "output_len must be at least 1, got -1"),
    ((8, 4, 0), "batch_size must be at least 1, got 0"),
    ((8.5, 4, 1), "input_len must be a whole number, got 8.5"),
])
def test_impossible_shapes_are_refused(shape, named):
    from llm_energy import UserError

    arch = Arch(hidden=64, layers=1, heads=1, kv_heads=1, head_dim=64, vocab=10, intermediate=64)
    with pytest.raises(UserError, match=named):
        generation_flops(arch, *shape)


@pytest.mark.parametrize("args, named", [
    (["--input-len", "-5", "--output-len", "6"], "--input-len must be at least 1, got -5"),
    (["--input-len", "24", "--output-len", "-1"], "--output-len must be at least 1, got -1"),
    (["--input-len", "24", "--output-len", "6", "--batch", "0"], "--batch must be at least 1, got 0"),
])
def test_cli_refuses_impossible_shapes_in_one_line(tmp_path, capsys, args, named):
    import json

    from llm_energy.__main__ import main

    path = tmp_path / "config.json"
    path.write_text(json.dumps(_llama(num_key_value_heads=2).config.to_dict()))
    assert main(["flops", "--model-config", str(path), *args]) == 1
    err = capsys.readouterr().err
    assert err == f"error: flops: {named}\n"


def test_cli_names_a_damaged_config(tmp_path, capsys):
    from llm_energy.__main__ import main

    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 128,\n "num_hidden_layers": 2,\n "num_atten')
    assert main(["flops", "--model-config", str(path), "--input-len", "8", "--output-len", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} is not valid JSON (line 3" in err
