"""Link the public data kept in ../shared/data into a data folder, as an offline user would place it.

Used by the tests and by .ci/run; never copies those files into the repository.
``python tests/shared_data.py data/raw`` links the default workloads' raw files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LLM_ENERGY_SHARED_DATA", REPO.parent / "shared" / "data"))

# raw file name in data_dir -> path under shared/data
RAW_FILES = {
    "AzureLLMInferenceTrace_code.csv": "azure_llm_2023/AzureLLMInferenceTrace_code.csv",
    "AzureLLMInferenceTrace_conv.csv": "azure_llm_2023/AzureLLMInferenceTrace_conv.csv",
    "burstgpt_slice.csv": "burstgpt/burstgpt_slice.csv",
    "aclImdb": "imdb/aclImdb",
    "data_de_validation.txt": "wmt14/data_de_validation.txt",
    "cnn_dailymail_validation_subset.csv": "cnn_dailymail/cnn_dailymail_validation_subset.csv",
    "wiki.test.raw": "wikitext2/wiki.test.raw",
    "pg19_sample.json": "pg19/sample.json",
}


def available() -> bool:
    """Whether the shared data folder is there."""
    return all((SHARED / rel).exists() for rel in RAW_FILES.values())


def link_raw(data_dir: str | Path) -> list[Path]:
    """Symlink every default raw file into ``data_dir``; existing files are left alone."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    linked = []
    for name, rel in RAW_FILES.items():
        src = (SHARED / rel).resolve()
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing: the shared data folder is incomplete")
        dest = data_dir / name
        if not dest.exists():
            if dest.is_symlink():
                dest.unlink()
            dest.symlink_to(src)
        linked.append(dest)
    return linked


if __name__ == "__main__":
    for p in link_raw(sys.argv[1] if len(sys.argv) > 1 else REPO / "data" / "raw"):
        print(p)
