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

# Under pytest-xdist (``bash scripts/run.sh test`` runs ``pytest -n auto``) each worker is one
# process of a CPU-bound suite on a machine of few cores:
# - vLLM's CPU build pins its OpenMP threads; left to itself, every worker's engines pin the same
#   core (core 0, with the next one reserved), so two engines would spin on one core. Each worker's
#   engines get a core of their own.
# - torch in the worker runs one thread: the tests' models are tiny, and a second thread mostly
#   spin-waits (up to +70 % CPU time on these shapes) on a core the other worker needs. The Snakemake
#   jobs that tests start set their own thread counts (the job's threads), as in a real run.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", str(int(_WORKER[2:]) % (os.cpu_count() or 1)))
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Files whose tests share a costly session fixture run in one worker, so that no worker makes it
# again: the finished small run (``one_cell_run``) and the session's vLLM engine. Every other file is a
# unit of its own, so that its module fixtures (the end-to-end run, the SLURM cluster, the engines of
# test_decoding) are made once. The heaviest units are handed out first.
# (xdist's ``--dist loadgroup`` would do this with marks, but with pytest 9 it cannot rename the
# node ids it groups by, so it silently spreads a group over workers: this scheduler groups itself.)
SHARED_GROUPS = {"test_merge_rerun.py": "one_cell_run", "test_reliability.py": "one_cell_run",
                 "test_decoding.py": "vllm", "test_models_backends.py": "vllm"}
HEAVY_FIRST = ["one_cell_run", "vllm", "test_slurm.py", "test_pipeline_e2e.py", "test_architectures.py"]


def _unit(nodeid: str) -> str:
    """The scheduling unit of a test: its file's group, else its file name."""
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return SHARED_GROUPS.get(name, name)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: unknown (and unused) with -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """Whole units (above) per worker, in collection order (which ``pytest_collection_modifyitems`` sets)."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the same order in every worker: heavy units first
        rank = {u: i for i, u in enumerate(HEAVY_FIRST)}
        items.sort(key=lambda it: rank.get(_unit(it.nodeid), len(rank)))  # stable: file order otherwise


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
        from llm_energy.measurement.backends import vllm as vllm_backend
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
def merged_run(tmp_path_factory, one_cell_run):
    """A copy of ``one_cell_run`` with its measurement copied in as another hardware's and merged
    (``reliability.merge_run``), once per session: the reliability cases work in copies of it, and the
    merge test reads it (never writes)."""
    import reliability

    return reliability.merge_run(tmp_path_factory.mktemp("merged") / "base", base=one_cell_run)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A one-layer Llama (head_dim 64) with the real Mistral tokenizer, built once per session."""
    from llm_energy.models.build import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny", TINY_ARCH, seed=0)


@pytest.fixture(scope="session")
def vllm_backend(tiny_model):
    """One vLLM engine for the whole session (engine start costs 15-30 s on CPU)."""
    pytest.importorskip("vllm")
    from llm_energy.measurement.backends import make_backend

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
    from llm_energy.models.build import build_model

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
