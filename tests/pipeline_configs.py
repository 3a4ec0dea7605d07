"""Small pipeline configs and dry-run parsing shared by the tests that run Snakemake."""

from __future__ import annotations

import os
import re
import subprocess

# One-layer Llama, head_dim 64, the shipped tokenizer: builds in seconds.
TINY_MODEL = {"source": "build", "seed": 3, "dtype": "bfloat16",
              "architecture": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 1024}}

BURSTGPT = {"file": "burstgpt_slice.csv", "input_column": "Request tokens", "output_column": "Response tokens",
            "sha256": "7865fda5dac50938a84dfccb06c405e2f5202969ecfbd671c8399de00f4335f0"}
AZURE_CODE = {"file": "AzureLLMInferenceTrace_code.csv", "input_column": "ContextTokens",
              "output_column": "GeneratedTokens"}


def wmt14(n_examples: int) -> dict:
    """The WMT-14 task (tokenized with the built model's tokenizer), ``n_examples`` of it."""
    return {"kind": "task", "task": "wmt14", "file": "data_de_validation.txt", "n_examples": n_examples,
            "template": "Translate German to English.\nGerman: {text}\nEnglish:", "output_tokens": 16}


def snakemake_cores() -> str:
    """``--cores`` of a Snakemake run that a test starts: 2, or this pytest-xdist worker's share of the
    machine's cores (1 per worker on two cores), so that two workers' runs never put more busy threads
    on the cores than there are (spinning OpenMP threads then slow every job many times over)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return str(max(1, min(2, (os.cpu_count() or 1) // workers)))


BINS = {"input": [128, 512], "output": [16, 64]}

# Short windows and few points: seconds per cell on two cores.
MEASUREMENT = {"repeats": 2, "warmup_batches": 1, "batch_size": 2, "min_window_s": 0.05, "pause_s": 0,
               "idle_s": 0.2, "examples_per_point": 0, "examples_per_point_large_batch": 0,
               "sweep_batch_sizes": [1], "sweep_input_lengths": [32], "sweep_output_lengths": [4],
               "sweep_fixed_input": 32, "sweep_fixed_output": 4}


# One transformers cell on one trace, no replay: the smallest whole pipeline (about 20 s on 2 cores).
ONE_CELL = {
    "models": {"m1": TINY_MODEL},
    "workloads": {"burstgpt": BURSTGPT},
    "bins": BINS,
    "measurement": MEASUREMENT,
    "replay": {"enabled": False},
    "validation": {"max_cv": 5.0},
    "comparisons": [],
    "cells": [{"model": "m1", "variants": ["transformers-eager"]}],
}


def jobs_planned(proc: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job-stats table of a dry run (empty when nothing is to be done)."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + "\n" + proc.stderr).splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"job\s+count", line)]
    if not starts:
        assert "Nothing to be done" in proc.stdout + proc.stderr
        return set()
    names = set()
    for line in lines[starts[0] + 2:]:
        if not line.strip() or line.startswith("total"):
            break
        names.add(line.split()[0])
    return names
