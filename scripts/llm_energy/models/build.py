"""Models: build any transformers architecture with seeded random weights and a real tokenizer, offline;
or download a hub model.

The tokenizer is Mistral's 32,000-token sentencepiece model, which the ``mistral_common`` package
ships inside itself, so nothing is downloaded. The folder written is ordinary Hugging Face format
that both transformers and vLLM load. The paper's architectures ship as config files in
``workflow/architectures/`` (with their sources), so a model can be measured at its real shape
before (or without) access to its weights.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from llm_energy import UserError
from llm_energy.models.flops import Arch, read_config_json
from llm_energy.pipeline.io import plain_modes, temp_dir_beside

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


# Special ids of the shipped (Mistral) tokenizer; a built model uses them whatever its source config says,
# so that the tokenizer and the model agree on <s> and </s>.
TOKENIZER_IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None}



def hf_config(architecture: dict):
    """A transformers config for ``architecture`` (``model_type`` plus Hugging Face config keys).

    Unknown keys are refused (a Hugging Face config would silently keep a misspelt key).
    """
    from transformers import CONFIG_MAPPING, AutoConfig

    arch = dict(architecture)
    model_type = arch.pop("model_type", "llama")
    if model_type not in CONFIG_MAPPING:
        raise UserError(f"architecture: model_type {model_type!r} is not known to transformers")
    cls = CONFIG_MAPPING[model_type]
    # Keys of the type's config, its aliases, and the rope keys that transformers 5 still reads from
    # older config.json files (and turns into rope_parameters).
    known = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {})) | {"rope_scaling", "rope_theta"}
    unknown = sorted(set(arch) - known)
    if unknown:
        raise UserError(f"architecture: {', '.join(unknown)} not a {model_type} config key")
    arch.setdefault("vocab_size", VOCAB_SIZE)
    if arch["vocab_size"] < VOCAB_SIZE:
        raise UserError(f"architecture: vocab_size {arch['vocab_size']} is smaller than the tokenizer's {VOCAB_SIZE}")
    arch.update(TOKENIZER_IDS)
    arch.setdefault("tie_word_embeddings", False)
    return AutoConfig.for_model(model_type, **arch)


def build_model(out_dir: str | Path, architecture: dict, seed: int = 0, dtype: str = "bfloat16",
                tokenizer_dir: str | Path | None = None) -> Path:
    """Write a random-weight model of any transformers architecture and the tokenizer to ``out_dir``.

    ``architecture`` holds ``model_type`` (default ``llama``) and Hugging Face config keys. Weights
    are drawn by the architecture's own initialisation (its ``_init_weights``: normal with std
    ``initializer_range`` for most) after seeding torch, so the same seed gives the same bytes.
    The folder is complete or absent. ``tokenizer_dir``: copy that folder's tokenizer files instead
    of converting the shipped one (e.g. where mistral_common is not installed).
    """
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    cfg = hf_config(architecture)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype)).eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out_dir)  # the mode a plain mkdir would have
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer_dir is None:
            save_tokenizer(tmp)
        else:
            for f in Path(tokenizer_dir).glob("tokenizer*"):
                shutil.copy(f, tmp / f.name)
            for f in ("special_tokens_map.json",):
                if (Path(tokenizer_dir) / f).is_file():
                    shutil.copy(Path(tokenizer_dir) / f, tmp / f)
        n_params = sum(p.numel() for p in model.parameters())
        (tmp / MARKER).write_text(json.dumps({
            "weights": "random", "seed": seed, "architecture": architecture, "n_parameters": n_params,
            "tokenizer": "mistral_common tokenizer.model.v1 (32,000-token sentencepiece)",
        }, indent=2))
        plain_modes(tmp)
        if out_dir.exists():
            if any(out_dir.iterdir()):
                shutil.rmtree(out_dir)
            else:
                out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built %s (%s): %d parameters, seed %d", out_dir, cfg.model_type, n_params, seed)
    return out_dir


def download_model(out_dir: str | Path, hub_id: str, revision: str | None = None) -> Path:
    """Download a hub model (config, safetensors weights, tokenizer) into ``out_dir`` (complete or absent).

    Offline, or without access to a gated model, one line says what to place where.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out_dir)  # the mode a plain mkdir would have
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(hub_id, revision=revision, local_dir=tmp,
                          allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken"])
        check_model_dir(tmp)
        plain_modes(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the one-line instruction below
        shutil.rmtree(tmp, ignore_errors=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"could not download {hub_id} ({first}); place the model folder (config.json, *.safetensors, "
            f"tokenizer.json or tokenizer.model) at {out_dir}, or log in with `huggingface-cli login` for a "
            "gated model") from None
    return out_dir


def model_facts(model_dir: str | Path) -> dict:
    """Architecture facts of a model folder for the measurement rows: type, parameters, active ones, MoE."""
    path = Path(model_dir) / "config.json"
    cfg = read_config_json(path)
    arch = Arch.from_file(path)
    return {"model_type": cfg.get("model_type", ""), "n_parameters": arch.parameters(),
            "n_active_parameters": arch.active_parameters(), "moe": bool(arch.n_experts)}


def weights_kind(model_dir: str | Path) -> str:
    """'random' for models this package built, else 'pretrained'."""
    return "random" if (Path(model_dir) / MARKER).is_file() else "pretrained"


def _check_safetensors(path: Path, fix: str) -> None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes: a copy
    cut short (or not a safetensors file at all) is found from the header alone, without loading."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n <= 0 or 8 + n > size or n > 100 * 2**20:
            raise UserError(f"model folder {path.parent}: {path.name} is not a safetensors file, or is cut short "
                            f"({size} bytes): {fix}")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"model folder {path.parent}: {path.name} has a damaged header: {fix}") from None
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2]
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise UserError(f"model folder {path.parent}: {path.name} is cut short ({size} of {need} bytes): {fix}")


def check_model_dir(model_dir: str | Path) -> Path:
    """Fail with one line when a model folder lacks its config, weights or tokenizer, or one is damaged.

    Checks what can be checked without loading: config.json is a JSON object with ``model_type``,
    every ``*.safetensors`` file (and every shard its index names) is complete, the tokenizer is there.
    """
    d = Path(model_dir)
    fix = "delete the folder to rebuild it, or place a complete copy"
    if not d.is_dir():
        raise UserError(f"model folder {d} does not exist" + (" (it is a file)" if d.exists() else "")
                        + f": build or download it (snakemake {d}), or place the folder there")
    if not (d / "config.json").is_file():
        raise UserError(f"model folder {d} has no config.json: {fix}")
    cfg = read_config_json(d / "config.json")
    if not cfg.get("model_type"):
        raise UserError(f"{d / 'config.json'} has no model_type (transformers and vLLM need it to pick the "
                        f"architecture): {fix}")
    safetensors = sorted(d.glob("*.safetensors"))
    if not safetensors and not any(d.glob("*.bin")):
        raise UserError(f"model folder {d} has no weights (*.safetensors or *.bin): {fix}")
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise UserError(f"{index} is not a valid weight index (JSON with a weight_map): {fix}") from None
        absent = sorted(s for s in shards if not (d / s).is_file())
        if absent:
            raise UserError(f"model folder {d} lacks weight shard(s) {', '.join(absent[:3])}"
                            f"{' and more' if len(absent) > 3 else ''} named in {index.name}: {fix}")
    for f in safetensors:
        _check_safetensors(f, fix)
    if not any((d / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        raise UserError(f"model folder {d} has no tokenizer (tokenizer.json or tokenizer.model): {fix}")
    tok = d / "tokenizer.json"
    if tok.is_file():
        try:
            json.loads(tok.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
            raise UserError(f"{tok} is not valid JSON ({where}): {fix}") from None
    return d
