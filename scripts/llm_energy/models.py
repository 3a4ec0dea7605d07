"""Models: build a small Llama-architecture model with seeded random weights and a real tokenizer, offline.

The tokenizer is Mistral's 32,000-token sentencepiece model, which the ``mistral_common`` package
ships inside itself, so nothing is downloaded. The folder written is ordinary Hugging Face format
that both transformers and vLLM load.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from . import UserError

log = logging.getLogger(__name__)

VOCAB_SIZE = 32000
MARKER = "llm_energy_build.json"


def mistral_tokenizer_file() -> Path:
    """Path of the sentencepiece model inside the installed ``mistral_common`` package."""
    import mistral_common

    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise UserError(f"mistral_common has no {path.name} at {path.parent}; reinstall the project's pinned "
                        "mistral-common")
    return path


def save_tokenizer(out_dir: Path) -> None:
    """Convert the shipped sentencepiece model into a fast tokenizer saved in ``out_dir``.

    Going through ``AutoTokenizer`` on a folder is the conversion path that keeps the full
    vocabulary in transformers 5 (building the fast class from the vocab file directly does not).
    """
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(mistral_tokenizer_file(), Path(tmp) / "tokenizer.model")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
            "add_bos_token": True, "add_eos_token": False, "legacy": False, "model_max_length": 1_000_000,
        }))
        tok = AutoTokenizer.from_pretrained(tmp)
    if len(tok) != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer conversion gave {len(tok)} tokens, expected {VOCAB_SIZE}")
    tok.save_pretrained(out_dir)


def build_model(out_dir: str | Path, architecture: dict, seed: int = 0) -> Path:
    """Write a random-weight Llama model and its tokenizer to ``out_dir`` (complete or absent).

    Weights are drawn with transformers' own initialisation (normal, std ``initializer_range``)
    after seeding torch, so the same seed gives the same bytes.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    cfg = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
        **architecture,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        (tmp / MARKER).write_text(json.dumps({
            "weights": "random", "seed": seed, "architecture": architecture, "n_parameters": n_params,
            "tokenizer": "mistral_common tokenizer.model.v1 (32,000-token sentencepiece)",
        }, indent=2))
        if out_dir.exists():
            if any(out_dir.iterdir()):
                shutil.rmtree(out_dir)
            else:
                out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built %s: %d parameters, seed %d", out_dir, n_params, seed)
    return out_dir


def weights_kind(model_dir: str | Path) -> str:
    """'random' for models this package built, else 'pretrained'."""
    return "random" if (Path(model_dir) / MARKER).is_file() else "pretrained"


def check_model_dir(model_dir: str | Path) -> Path:
    """Fail with one line when a model folder lacks its config, weights or tokenizer."""
    d = Path(model_dir)
    if not d.is_dir():
        raise UserError(f"model folder {d} does not exist")
    if not (d / "config.json").is_file():
        raise UserError(f"model folder {d} has no config.json")
    if not any(d.glob("*.safetensors")) and not any(d.glob("*.bin")):
        raise UserError(f"model folder {d} has no weights (*.safetensors or *.bin)")
    if not any((d / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        raise UserError(f"model folder {d} has no tokenizer (tokenizer.json or tokenizer.model)")
    return d
