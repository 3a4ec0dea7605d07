"""Shared fixtures: the package from the working tree, one model build and one vLLM engine per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

import shared_data  # noqa: E402

TINY_ARCH = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "max_position_embeddings": 1024}


@pytest.fixture(scope="session", autouse=True)
def private_lock_dir(tmp_path_factory):
    """Device locks of this test session in a folder of its own, so that a pipeline measuring on the
    same machine (whose locks are in the default folder) does not hold the tests up, nor they it."""
    old = os.environ.get("LLM_ENERGY_LOCK_DIR")
    os.environ["LLM_ENERGY_LOCK_DIR"] = str(tmp_path_factory.mktemp("locks"))
    yield
    if old is None:
        os.environ.pop("LLM_ENERGY_LOCK_DIR", None)
    else:
        os.environ["LLM_ENERGY_LOCK_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def vllm_engines_in_processes():
    """Every vLLM engine of the test session in processes of its own: the session starts several, and
    an in-process engine (what a measurement job on CPU runs, ``backends/vllm.py``) breaks when another
    engine of the same process closes. Jobs that tests start (Snakemake) still run theirs in-process;
    ``test_vllm_engine_in_process`` runs one on its own."""
    try:
        from llm_energy.backends import vllm as vllm_backend
    except ImportError:
        yield
        return
    before = vllm_backend._in_process_used
    vllm_backend._in_process_used = True
    yield
    vllm_backend._in_process_used = before


@pytest.fixture(scope="session")
def shared():
    """The ../shared/data folder; tests that need it skip with a reason when it is absent."""
    if not shared_data.available():
        pytest.skip(f"shared data not found at {shared_data.SHARED}")
    return shared_data.SHARED


@pytest.fixture(scope="session")
def one_cell_run(tmp_path_factory, shared) -> Path:
    """One finished small pipeline run (``reliability.one_cell_run``) for the session: the tests that need a
    finished run work in copies of it (``shutil.copytree(..., symlinks=True)``), never in it."""
    import reliability

    return reliability.one_cell_run(tmp_path_factory.mktemp("one-cell") / "wf")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A one-layer Llama (head_dim 64) with the real Mistral tokenizer, built once per session."""
    from llm_energy.models import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny", TINY_ARCH, seed=0)


@pytest.fixture(scope="session")
def vllm_backend(tiny_model):
    """One vLLM engine for the whole session (engine start costs 15-30 s on CPU)."""
    pytest.importorskip("vllm")
    from llm_energy.backends import make_backend

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    backend = make_backend("vllm-eager", str(tiny_model), dtype="bfloat16", max_model_len=1024,
                           max_batch_size=4)
    backend.load()
    yield backend
    backend.close()


DRAFT_ARCH = {"hidden_size": 128, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 1, "max_position_embeddings": 1024}


@pytest.fixture(scope="session")
def draft_model(tmp_path_factory) -> Path:
    """A smaller model with the same tokenizer: the draft of speculative decoding."""
    from llm_energy.models import build_model

    return build_model(tmp_path_factory.mktemp("models") / "draft", DRAFT_ARCH, seed=1)


class Loaded:
    """A loaded session engine handed to run_cell, which must neither load nor close it again."""

    def __init__(self, inner):
        self.inner = inner

    def load(self):
        pass

    def close(self):
        pass

    def __getattr__(self, name):
        return getattr(self.inner, name)
