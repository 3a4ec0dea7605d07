"""Classical NLP tasks as workloads: texts from the public sets, a prompt template, the measured model's
tokenizer, a fixed output length. 1,024 examples sampled with a fixed seed (fewer when the set has fewer).

| task | text | output tokens (paper) |
|---|---|---|
| ``imdb`` (classification) | one review per file under ``aclImdb/test/{pos,neg}`` | 1 |
| ``wmt14`` (translation de->en) | one German sentence per line | 64 |
| ``cnn_dailymail`` (summarization) | the ``article`` column of the CSV | 64 |
| ``wikitext2`` (generation) | each paragraph of ``wiki.test.raw`` (headings and blank lines skipped) | 64 |
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy import UserError
from llm_energy.workloads.sources import read_text

TASKS = ("imdb", "wmt14", "cnn_dailymail", "wikitext2")


def read_texts(task: str, path: str | Path) -> list[str]:
    """Every example text of a task's file (or folder), in a stable order.

    A missing, empty, binary or malformed file (or a folder without reviews) is one line naming it.
    """
    path = Path(path)
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if not path.exists():
        raise UserError(f"{path} is missing: place the {task} data there (see the workload's citation)")
    fix = (f"delete it so that the pipeline fetches it again, or place the published {task} data there (see the "
           "workload's citation)")
    what = {"imdb": "the aclImdb folder", "wmt14": "a text file of sentences, one per line",
            "cnn_dailymail": "a CSV file with an 'article' column", "wikitext2": "WikiText-2 raw text"}[task]
    if task == "imdb":
        if not path.is_dir():
            raise UserError(f"{path} is a file, not {what}: {fix}")
        files = sorted((path / "test").glob("*/*.txt")) or sorted(path.rglob("*.txt"))
        if not files:
            raise UserError(f"{path}: no reviews (test/pos/*.txt, test/neg/*.txt) in the folder: {fix}")
        texts = [t for t in (read_text(f, "an IMDB review", fix, allow_empty=True) for f in files) if t.strip()]
        if not texts:
            raise UserError(f"{path}: all {len(files)} review files are empty: {fix}")
        return texts
    if path.is_dir():
        raise UserError(f"{path} is a folder, not {what}: {fix}")
    text = read_text(path, what, fix, newlines=task != "cnn_dailymail")
    if task == "wmt14":
        texts = [line.strip() for line in text.splitlines() if line.strip()]
    elif task == "cnn_dailymail":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if not reader.fieldnames or "article" not in reader.fieldnames:
                raise UserError(f"{path}: no 'article' column (columns: {', '.join(map(repr, reader.fieldnames or []))}"
                                f"): {fix}")
            texts = [row["article"] for row in reader if row["article"] and row["article"].strip()]
        except csv.Error as exc:
            raise UserError(f"{path}: not readable as {what} (line {reader.line_num}: {exc}): {fix}") from None
    else:  # wikitext2
        lines = (line.strip() for line in text.splitlines())
        texts = [line for line in lines if line and not line.startswith("=")]
    if not texts:
        raise UserError(f"{path}: no {task} examples found in it: {fix}")
    return texts


def profile_task(task: str, path: str | Path, tokenizer, template: str, output_tokens: int,
                 n_examples: int = 1024, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Per-example (input_tokens, output_tokens) of the templated prompts, and what was sampled."""
    texts = read_texts(task, path)
    n = min(n_examples, len(texts))
    picked = np.sort(np.random.default_rng(seed).choice(len(texts), size=n, replace=False))
    prompts = [template.format(text=texts[i]) for i in picked]
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]
    df = pd.DataFrame({"input_tokens": np.asarray(lengths, dtype="int64"),
                       "output_tokens": np.full(n, output_tokens, dtype="int64")})
    info = {"n_examples_available": len(texts), "n_examples_requested": n_examples, "n_rows_in_file": len(texts),
            "rows_dropped": {"not sampled": len(texts) - n} if len(texts) > n else {},
            "note": (f"the file holds only {len(texts)} examples, fewer than {n_examples}" if n < n_examples
                     else f"{n} of {len(texts)} examples sampled with seed {seed}")}
    return df, info
