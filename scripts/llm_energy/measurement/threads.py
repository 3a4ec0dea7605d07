"""How many CPU threads a metering job computes on (``measurement.cpu_threads``; 0: the framework's own choice).

A CPU meter's energy depends on the thread count (``../shared/NOTES.md``: the same batch costs 12 %
fewer CPU seconds on one thread than on two, and two threads' spin-waiting is what makes batches
spread), so a grid measured on one count and replayed on another compares two different meters. The
count is therefore set in the setup every metering job shares (``cell.cell_job``: the grid, the
replay, the rate sweep), for both frameworks:

- transformers (and the reference kernel's callers): torch's intra-op threads;
- vLLM on CPU: its engine binds its own OpenMP threads to the CPUs in ``VLLM_CPU_OMP_THREADS_BIND``
  (default ``auto``: every core) and then silences ``torch.set_num_threads``, so the count becomes a
  bind list of the first ``n`` CPUs this process may run on. A bind list the environment already
  gives (a user's, or a SLURM job's) is kept and said.

The count set through ``torch._C.set_num_threads``, the builtin that ``torch.set_num_threads`` is until
vLLM replaces it with a warning in its in-process worker (``reference.py``).
"""

from __future__ import annotations

import logging
import os

from llm_energy import UserError

log = logging.getLogger(__name__)

BIND_VAR = "VLLM_CPU_OMP_THREADS_BIND"


def set_torch_threads(n: int) -> None:
    """torch's intra-op thread count, also where vLLM has replaced ``torch.set_num_threads``."""
    import torch

    getattr(torch._C, "set_num_threads", torch.set_num_threads)(n)


def limit_cpu_threads(n: int, framework: str) -> None:
    """Apply ``measurement.cpu_threads`` = ``n`` to this job before its backend loads (0: nothing)."""
    if not n:
        return
    cpus = sorted(os.sched_getaffinity(0))
    if n > len(cpus):
        raise UserError(f"measurement.cpu_threads is {n}, but this job may run on {len(cpus)} CPUs "
                        f"({', '.join(map(str, cpus))}): set it to at most {len(cpus)}, or 0 for all")
    set_torch_threads(n)
    if framework != "vllm":
        log.info("measurement.cpu_threads: torch computes on %d thread(s)", n)
        return
    import torch

    if torch.cuda.is_available():
        return  # a GPU engine: vLLM does not bind CPU threads there
    given = os.environ.get(BIND_VAR, "auto")
    if given != "auto":
        log.info("measurement.cpu_threads %d: %s=%r from the environment is kept", n, BIND_VAR, given)
        return
    os.environ[BIND_VAR] = ",".join(map(str, cpus[:n]))
    log.info("measurement.cpu_threads: vLLM binds its threads to CPU(s) %s (%s)", os.environ[BIND_VAR], BIND_VAR)
