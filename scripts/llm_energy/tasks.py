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
from pathlib import Path

import numpy as np
import pandas as pd

from . import UserError

TASKS = ("imdb", "wmt14", "cnn_dailymail", "wikitext2")


def read_texts(task: str, path: str | Path) -> list[str]:
    """Every example text of a task's file (or folder), in a stable order."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} is missing: place the {task} data there (see the workload's citation)")
    try:
        if task == "imdb":
            files = sorted((path / "test").glob("*/*.txt")) or sorted(path.rglob("*.txt"))
            texts = [f.read_text(encoding="utf-8") for f in files]
        elif task == "wmt14":
            texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif task == "cnn_dailymail":
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "article" not in reader.fieldnames:
                    raise UserError(f"{path}: no 'article' column (columns: {reader.fieldnames})")
                texts = [row["article"] for row in reader if row["article"]]
        elif task == "wikitext2":
            lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
            texts = [line for line in lines if line and not line.startswith("=")]
        else:
            raise UserError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not readable as {task} data ({exc})") from None
    if not texts:
        raise UserError(f"{path}: no {task} examples found")
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
