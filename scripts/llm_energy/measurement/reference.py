"""A fixed reference kernel metered with a job's own meter: the meter's level in that job.

A CPU-time estimate moves between jobs minutes apart on a shared VM (the work a CPU second buys
changes with what else the host runs), so the same batch costs a different number of "joules" in the
grid job and in the replay job. A fixed piece of work measured through both jobs shows that level:
the replay divided by the ratio of the two jobs' reference energies is the replay at the grid job's
level. It runs on one thread (``../shared/NOTES.md``: with two threads the spin-waiting the reference
does not do dominates and it barely tracks the batches; on one it does, correlation 0.74-0.85).

One thread in every job: vLLM's CPU worker replaces ``torch.set_num_threads`` with a function that
only warns ("doesn't allow to use torch.set_num_threads after the thread binding"), and its engine runs
in the job's process, so the kernel sets the count with ``threads.set_torch_threads`` (the builtin
that ``torch.set_num_threads`` is until then). Calling the silenced function instead left the kernel
on vLLM's two bound threads in every vLLM job (0.10 s wall against 0.19 s on one thread here) and
logged a warning per reading; vLLM's own generation speed is the same before and after the kernel
sets the count to 1 and back (checked on tiny-llama, 4 x (256 -> 128)).

Only for the CPU meters (the estimate and RAPL): a GPU's counter does not see CPU work, and a GPU's
level is not a CPU kernel's. The rows keep the raw energy; the reference is a column beside it.
"""

from __future__ import annotations

import logging

from llm_energy.measurement.threads import set_torch_threads

log = logging.getLogger(__name__)

CPU_SOURCES = ("cpu-estimate", "rapl")
ITERATIONS = 300  # about 0.2 CPU seconds here, read to the microsecond (meters/cpu_estimate.py)
MATRIX = 384  # bf16 matmul of this size, and a pass over a 8 MiB buffer, per iteration
BUFFER = 1 << 21


class ReferenceKernel:
    """``measure()``: the meter's energy for one fixed run of the kernel (J), on one torch thread."""

    def __init__(self, meter, iterations: int = ITERATIONS):
        import torch

        g = torch.Generator().manual_seed(0)
        self.meter, self.iterations = meter, int(iterations)
        self._a = torch.randn(MATRIX, MATRIX, generator=g).to(torch.bfloat16)
        self._b = torch.randn(MATRIX, MATRIX, generator=g).to(torch.bfloat16)
        self._buf = torch.randn(BUFFER, generator=g)

    def _work(self) -> None:
        for _ in range(self.iterations):
            self._a @ self._b
            self._buf.mul_(1.0)

    def measure(self) -> float:
        import torch

        threads = torch.get_num_threads()
        set_torch_threads(1)
        try:
            with self.meter.window() as w:
                self._work()
        finally:
            set_torch_threads(threads)
        return float(w.energy_j)


def reference_for(meter) -> ReferenceKernel | None:
    """A reference kernel for a CPU meter; None for any other (a GPU's counter does not see it)."""
    if getattr(meter, "source", "") not in CPU_SOURCES:
        return None
    return ReferenceKernel(meter)
