"""Prompts of exact token lengths for the controlled sweeps: cut from a PG-19 book, as the paper did.

The book is tokenized once with the measured model's tokenizer; each request of a batch starts at
its own seeded offset, and a request longer than the book wraps around to its start (the text
repeats; ``wrapped`` says how often that happened). Every repeat gets different offsets, so no
cache shortens a prefill.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from . import UserError

log = logging.getLogger(__name__)


def read_book(path: str | Path) -> str:
    """Text of a PG-19 record (``.json`` with a ``text`` field, ``.jsonl`` whose records are joined) or ``.txt``."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))["text"]
        if path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            return "\n\n".join(json.loads(line)["text"] for line in lines if line.strip())
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} is missing: place a PG-19 book there (see config measurement.prompt_file)") from None
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a PG-19 record with a 'text' field ({exc})") from None


class BookPrompts:
    """Token-id prompts cut from one book."""

    source = "pg19"

    def __init__(self, token_ids: list[int], seed: int = 0):
        if len(token_ids) < 16:
            raise UserError("the prompt book has fewer than 16 tokens")
        self.ids = np.asarray(token_ids, dtype=np.int64)
        self.seed = seed
        self.wrapped = 0

    @classmethod
    def from_file(cls, path: str | Path, tokenizer, seed: int = 0) -> "BookPrompts":
        ids = tokenizer(read_book(path), add_special_tokens=False)["input_ids"]
        log.info("prompt book %s: %d tokens", path, len(ids))
        return cls(ids, seed)

    def __call__(self, input_len: int, output_len: int, batch_size: int, stream: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, input_len, output_len, batch_size, stream])
        n = len(self.ids)
        out = []
        for start in rng.integers(0, n, size=batch_size):
            idx = (start + np.arange(input_len)) % n
            if start + input_len > n:
                self.wrapped += 1
            out.append(self.ids[idx].tolist())
        return out


class RandomPrompts:
    """Seeded random token ids (never special tokens): content-free prompts of exact length."""

    source = "random"

    def __init__(self, seed: int = 0, first_id: int = 3, vocab_size: int = 32000):
        self.seed, self.first_id, self.vocab_size = seed, first_id, vocab_size
        self.wrapped = 0

    def __call__(self, input_len: int, output_len: int, batch_size: int, stream: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, input_len, output_len, batch_size, stream])
        return rng.integers(self.first_id, self.vocab_size, size=(batch_size, input_len)).tolist()
