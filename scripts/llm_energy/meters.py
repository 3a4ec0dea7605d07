"""Energy meters: a window around a piece of work, with the energy it used and where the number came from.

Backends, best first: ``nvml`` (the GPU's cumulative energy counter), ``rapl`` (the CPU package and
DRAM counters in /sys/class/powercap) and ``cpu-estimate`` (CPU seconds of this process tree times a
per-core power, a labelled estimate, never passed off as a measurement).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from . import UserError

log = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")


@dataclass
class Window:
    """What one metered window measured. Filled when the ``with`` block ends."""

    energy_j: float = float("nan")
    duration_s: float = float("nan")
    energy_source: str = ""

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


class Meter(Protocol):
    """A meter reads a cumulative counter at both edges of a window."""

    source: str

    def read(self) -> float:
        """Cumulative energy in joules since an arbitrary origin."""

    def describe(self) -> dict:
        """Provenance of the numbers this meter gives (recorded with every row)."""


class _Windowed:
    """Shared window logic: read the counter, run the block, read it again."""

    source = ""

    def _sync(self) -> None:
        """Wait for queued device work so that it lands inside the window it belongs to."""

    class _Ctx:
        def __init__(self, meter: "_Windowed"):
            self.meter = meter
            self.window = Window(energy_source=meter.source)

        def __enter__(self) -> Window:
            self.meter._sync()
            self._e0 = self.meter.read()
            self._t0 = time.perf_counter()
            return self.window

        def __exit__(self, exc_type, exc, tb) -> None:
            self.meter._sync()
            t1 = time.perf_counter()
            e1 = self.meter.read()
            self.window.duration_s = t1 - self._t0
            self.window.energy_j = e1 - self._e0

    def window(self) -> "_Windowed._Ctx":
        """``with meter.window() as w: ...`` then ``w.energy_j``, ``w.duration_s``."""
        return _Windowed._Ctx(self)


class CpuEstimateMeter(_Windowed):
    """CPU-time x per-core power over this process and all its descendants (vLLM runs workers).

    Children that exit inside a window take their CPU time with them; the engines used here keep
    their workers alive for the whole cell, so the window sees them.
    """

    source = "cpu-estimate"

    def __init__(self, watts_per_core: float):
        import psutil

        self.watts_per_core = float(watts_per_core)
        self._root = psutil.Process(os.getpid())

    def _cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        procs = [self._root]
        try:
            procs += self._root.children(recursive=True)
        except psutil.Error:
            pass
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total

    def read(self) -> float:
        return self._cpu_seconds() * self.watts_per_core

    def describe(self) -> dict:
        return {"energy_source": self.source, "meter_detail": f"cpu-seconds x {self.watts_per_core:g} W/core"}


@dataclass
class RaplDomain:
    name: str
    path: Path
    max_uj: int


def rapl_domains(root: Path = POWERCAP) -> list[RaplDomain]:
    """Readable top-level package and DRAM domains (``intel-rapl:N`` and their ``dram`` children)."""
    found = []
    if not root.is_dir():
        return found
    for zone in sorted(root.glob("intel-rapl:*")):
        for dom in [zone, *sorted(zone.glob("intel-rapl:*:*"))]:
            try:
                name = (dom / "name").read_text().strip()
                if dom != zone and name != "dram":
                    continue  # core/uncore are inside the package domain already
                int((dom / "energy_uj").read_text())
                max_uj = int((dom / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            found.append(RaplDomain(f"{dom.name}:{name}", dom, max_uj))
    return found


class RaplMeter(_Windowed):
    """Sum of RAPL package and DRAM counters, wrap-around handled with ``max_energy_range_uj``."""

    source = "rapl"

    def __init__(self, domains: list[RaplDomain]):
        if not domains:
            raise UserError("RAPL is not readable on this machine (/sys/class/powercap)")
        self.domains = domains
        self._last = [self._raw(d) for d in domains]
        self._total_uj = 0

    @staticmethod
    def _raw(domain: RaplDomain) -> int:
        return int((domain.path / "energy_uj").read_text())

    def read(self) -> float:
        for i, dom in enumerate(self.domains):
            now = self._raw(dom)
            delta = now - self._last[i]
            if delta < 0:  # the counter wrapped once since the last read
                delta += dom.max_uj
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6

    def describe(self) -> dict:
        return {"energy_source": self.source, "meter_detail": "+".join(d.name for d in self.domains)}


class NvmlMeter(_Windowed):
    """Sum of NVML's cumulative energy counters (mJ, Volta and newer) over the visible GPUs."""

    source = "nvml"

    def __init__(self):
        import pynvml

        from .hardware import nvml_gpus

        gpus = nvml_gpus()
        if not gpus:
            raise UserError("no NVIDIA GPU is visible (NVML found none)")
        pynvml.nvmlInit()
        self._nvml = pynvml
        self.gpus = gpus
        self.handles = [pynvml.nvmlDeviceGetHandleByUUID(g.uuid) for g in gpus]
        try:
            for h in self.handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
        except pynvml.NVMLError as exc:
            raise UserError(f"the GPU's energy counter is not supported ({exc}); pre-Volta GPUs need "
                            "the power-timeline meter") from None

    def _sync(self) -> None:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass

    def read(self) -> float:
        return sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0

    def describe(self) -> dict:
        return {"energy_source": self.source,
                "meter_detail": ",".join(f"{g.name} {g.uuid}" for g in self.gpus)}


def make_meter(kind: str = "auto", *, watts_per_core: float = 4.0, require_measured: bool = False):
    """The meter of that kind, or for ``auto`` the best one available here.

    Raises :class:`UserError` when a named meter is not available, or when ``require_measured``
    and only the CPU estimate is.
    """
    if kind in ("auto", "nvml"):
        try:
            return NvmlMeter()
        except (UserError, ImportError) as exc:
            if kind == "nvml":
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
