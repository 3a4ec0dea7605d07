"""measurement.cpu_threads: every metering job (grid, replay, rate sweep) computes on the same threads,
transformers through torch and vLLM on CPU through its own thread binding."""

import os

import pytest
import torch

from llm_energy import UserError
from llm_energy.measurement.threads import BIND_VAR, limit_cpu_threads


@pytest.fixture
def threads():
    """torch's thread count and vLLM's bind variable as they were, after the test (the code sets the
    variable itself, so it is put back here, not by monkeypatch, which restores only what it set)."""
    before, bind = torch.get_num_threads(), os.environ.pop(BIND_VAR, None)
    yield
    torch.set_num_threads(before)
    os.environ.pop(BIND_VAR, None)
    if bind is not None:
        os.environ[BIND_VAR] = bind


def test_zero_leaves_the_threads_to_the_framework(threads):
    before = torch.get_num_threads()
    limit_cpu_threads(0, "vllm")
    assert torch.get_num_threads() == before and BIND_VAR not in os.environ


def test_transformers_computes_on_the_count_even_where_vllm_silenced_the_setter(threads, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # what vLLM's CPU worker does
    limit_cpu_threads(1, "transformers")
    assert torch.get_num_threads() == 1 and BIND_VAR not in os.environ


@pytest.mark.skipif(torch.cuda.is_available(), reason="vLLM binds CPU threads only without a GPU")
def test_vllm_binds_the_first_cpus_of_the_job_unless_the_environment_chose(threads):
    cpus = sorted(os.sched_getaffinity(0))
    limit_cpu_threads(1, "vllm")
    assert os.environ[BIND_VAR] == str(cpus[0]) and torch.get_num_threads() == 1
    os.environ[BIND_VAR] = "nobind"  # a user's (or a cluster job's) choice is kept (the fixture removes it)
    limit_cpu_threads(1, "vllm")
    assert os.environ[BIND_VAR] == "nobind"


def test_more_threads_than_the_job_may_use_is_one_line(threads):
    n = len(os.sched_getaffinity(0))
    with pytest.raises(UserError, match=rf"measurement.cpu_threads is {n + 1}, but this job may run on {n} CPUs"):
        limit_cpu_threads(n + 1, "transformers")


def test_a_replay_job_computes_on_the_configured_threads_as_its_grid_job_does(tiny_model, tmp_path, threads):
    # The shared setup of every metering job (the grid's measure_cell, the replay, the rate sweep).
    from test_files_and_locks import _config

    from llm_energy.measurement.cell import cell_job
    from llm_energy.pipeline import config as config_mod
    from llm_energy.pipeline.hardware import detect

    raw = _config(tmp_path, tiny_model)
    raw["measurement"]["cpu_threads"] = 1
    cfg = config_mod.validate(raw)
    torch.set_num_threads(2)
    cell = config_mod.cell_of(cfg, detect(), "m", "transformers-eager", "greedy")
    cell_job(cfg, cell, longest=64, batch_size=1)
    assert torch.get_num_threads() == 1
