"""The model architectures that ship with the pipeline (``workflow/architectures/*.json``) and
architecture files a config names: read here, for the config check and for the model build."""

from __future__ import annotations

import json
from pathlib import Path

from llm_energy import UserError

ARCHITECTURES_DIR = Path(__file__).resolve().parents[3] / "workflow" / "architectures"


def shipped_architectures() -> dict[str, Path]:
    """The architecture configs that ship with the pipeline (``workflow/architectures/*.json``), by name."""
    return {p.stem: p for p in sorted(ARCHITECTURES_DIR.glob("*.json"))}


def read_architecture_file(name_or_path: str) -> dict:
    """A shipped architecture by name, or a config.json-like file by path; ``_``-prefixed keys are notes."""
    shipped = shipped_architectures()
    path = shipped.get(name_or_path) or Path(name_or_path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"architecture {name_or_path!r} is neither a shipped one ({', '.join(shipped)}) nor a "
                        "file") from None
    except ValueError as exc:
        raise UserError(f"architecture file {path} is not valid JSON: {exc}") from None
    return {k: v for k, v in raw.items() if not k.startswith("_")}
