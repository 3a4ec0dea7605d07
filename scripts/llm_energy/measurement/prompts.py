"""Prompts of exact token lengths for the controlled sweeps: cut from a PG-19 book, as the paper did.

The book is tokenized once with the measured model's tokenizer; each request of a batch starts at
its own seeded offset, and a request that runs past the book's end wraps around to its start
(``wrapped`` says how often that happened). A book read from a file must hold the longest prompt,
so that no prompt repeats its own text. Every repeat gets different offsets, so no cache shortens a
prefill.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from llm_energy import UserError
from llm_energy.workloads.sources import read_text

log = logging.getLogger(__name__)


BOOK_FIX = "place a complete PG-19 book there (config measurement.prompt_file), or set measurement.prompts: random"


def read_book(path: str | Path) -> str:
    """Text of a PG-19 record (``.json`` with a ``text`` field, ``.jsonl`` whose records are joined) or ``.txt``.

    A missing, empty, binary or malformed book is one line naming it.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} is missing: place a PG-19 book there (see config measurement.prompt_file)")
    raw = read_text(path, "a PG-19 book", BOOK_FIX)
    if path.suffix == ".json":
        records = [(1, raw)]
    elif path.suffix == ".jsonl":
        records = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    else:
        records = []
    texts = []
    for n, record in records:
        try:
            rec = json.loads(record)
        except ValueError as exc:
            at = f"line {exc.lineno + n - 1}" if isinstance(exc, json.JSONDecodeError) else f"line {n}"
            raise UserError(f"{path}: not valid JSON ({at}; cut short?), not a PG-19 record: {BOOK_FIX}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            raise UserError(f"{path}: the record at line {n} has no 'text' string, not a PG-19 record: {BOOK_FIX}")
        texts.append(rec["text"])
    text = "\n\n".join(texts) if records else raw
    if not text.strip():
        raise UserError(f"{path}: the book's text is empty: {BOOK_FIX}")
    return text


class BookPrompts:
    """Token-id prompts cut from one book.

    A book read from a file (``from_file``) must be at least as long as the longest prompt, so that
    no prompt repeats text of its own; ``longest`` checks that at once, before anything is measured.
    """

    source = "pg19"

    def __init__(self, token_ids: list[int], seed: int = 0, path: str | Path | None = None):
        where = f"{path}: " if path else ""
        if len(token_ids) < 16:
            raise UserError(f"{where}the prompt book has fewer than 16 tokens ({len(token_ids)})"
                            + (f": {BOOK_FIX}" if path else ""))
        self.ids = np.asarray(token_ids, dtype=np.int64)
        self.seed = seed
        self.path = path
        self.wrapped = 0

    @classmethod
    def from_file(cls, path: str | Path, tokenizer, seed: int = 0, longest: int | None = None) -> BookPrompts:
        """Tokenize a PG-19 book; with ``longest`` (the longest prompt of the cell), refuse a shorter book."""
        ids = tokenizer(read_book(path), add_special_tokens=False)["input_ids"]
        log.info("prompt book %s: %d tokens", path, len(ids))
        book = cls(ids, seed, path=path)
        if longest:
            book.check_length(longest)
        return book

    def check_length(self, input_len: int) -> None:
        """A book from a file shorter than a prompt would repeat its text inside that prompt: one line."""
        if self.path is not None and input_len > len(self.ids):
            raise UserError(f"{self.path}: the book has {len(self.ids)} tokens, fewer than the longest prompt "
                            f"({input_len} tokens): {BOOK_FIX}")

    def __call__(self, input_len: int, output_len: int, batch_size: int, stream: int) -> list[list[int]]:
        self.check_length(input_len)
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


class TaskPrompts:
    """Prompts of exact token lengths made of a task workload's real texts in its template (e.g.
    CNN/DailyMail articles before ``TL;DR:``): what prompt-lookup speculative decoding needs, since it
    proposes n-grams found in the prompt (random ids give it nothing to find).

    Each request starts at its own seeded text; the template's text before and after ``{text}`` is kept
    whole, and the texts in between are cut (or joined with the next ones) to the exact length.
    """

    def __init__(self, name: str, texts: list[str], template: str, tokenizer, seed: int = 0):
        if not texts:
            raise UserError(f"task {name!r} has no texts to make prompts of")
        head, _, tail = template.partition("{text}")
        self.head = tokenizer(head, add_special_tokens=False)["input_ids"] if head else []
        self.tail = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
        self.texts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[:256]]
        self.sep = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
        self.source, self.seed, self.wrapped = f"task:{name}", seed, 0

    def __call__(self, input_len: int, output_len: int, batch_size: int, stream: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, input_len, output_len, batch_size, stream])
        body_len = input_len - len(self.head) - len(self.tail)
        if body_len < 1:
            raise UserError(f"{self.source}: a prompt of {input_len} tokens cannot hold the template's own "
                            f"{len(self.head) + len(self.tail)} tokens")
        out = []
        for start in rng.integers(0, len(self.texts), size=batch_size):
            body, k = [], int(start)
            while len(body) < body_len:
                body += self.texts[k % len(self.texts)] + self.sep
                k += 1
            self.wrapped += int(k - start > 1)
            out.append(self.head + body[:body_len] + self.tail)
        return out
