"""Energy meters: a window around a piece of work, with the energy it used and where the number came from.

Backends, best first: ``nvml`` (the GPU's cumulative energy counter), ``rapl`` (the CPU package and
DRAM counters in /sys/class/powercap) and ``cpu-estimate`` (CPU seconds of this process tree times a
per-core power, a labelled estimate, never passed off as a measurement).
"""

from __future__ import annotations

from llm_energy import UserError
from llm_energy.measurement.meters.base import (
    DeviceLost,
    Meter,
    NoGpu,
    PowerSampler,
    Window,
    counter_period_s,
    integrate,
)
from llm_energy.measurement.meters.cpu_estimate import CpuEstimateMeter
from llm_energy.measurement.meters.nvml import NvmlMeter
from llm_energy.measurement.meters.rapl import RaplDomain, RaplMeter, rapl_domains

__all__ = ["CpuEstimateMeter", "DeviceLost", "Meter", "NoGpu", "NvmlMeter", "PowerSampler", "RaplDomain",
           "RaplMeter", "Window", "counter_period_s", "integrate", "make_meter", "rapl_domains"]


def make_meter(kind: str = "auto", *, watts_per_core: float = 4.0, require_measured: bool = False,
               allow_shared_gpu: bool = False, sample_interval_s: float = 0.1, n_gpus: int | None = None,
               counter_probe_s: float = 1.0):
    """The meter of that kind, or for ``auto`` the best one available here.

    ``n_gpus``: the GPUs the cell runs on (its tensor-parallel size); an NVML meter meters the first
    ``n_gpus`` visible ones and narrows ``CUDA_VISIBLE_DEVICES`` to them (None: every visible GPU).
    Raises :class:`UserError` when a named meter is not available, or when ``require_measured``
    and only the CPU estimate is.
    """
    if kind in ("auto", "nvml"):
        try:
            return NvmlMeter(allow_shared=allow_shared_gpu, sample_interval_s=sample_interval_s, n_gpus=n_gpus,
                             counter_probe_s=counter_probe_s)
        except ImportError as exc:
            if kind == "nvml":
                raise UserError(f"meter 'nvml' is not available: {exc}") from None
        except UserError as exc:
            # Only "no GPU here" lets auto fall back; a busy GPU or too few of them stop the cell.
            if kind == "nvml" or not isinstance(exc, NoGpu):
                raise UserError(f"meter 'nvml' is not available: {exc}") from None
    if kind in ("auto", "rapl"):
        domains = rapl_domains()
        if domains:
            return RaplMeter(domains)
        if kind == "rapl":
            raise UserError("meter 'rapl' is not available: /sys/class/powercap has no readable RAPL domain")
    if require_measured:
        raise UserError("measurement.require_measured_energy is true, but no energy counter (NVML, RAPL) is "
                        "readable here and only the CPU-time estimate is available")
    return CpuEstimateMeter(watts_per_core)
