"""Energy meters: a window around a piece of work, with the energy it used and where the number came from.

Backends, best first: ``nvml`` (the GPU's cumulative energy counter), ``rapl`` (the CPU package and
DRAM counters in /sys/class/powercap) and ``cpu-estimate`` (CPU seconds of this process tree times a
per-core power, a labelled estimate, never passed off as a measurement).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from . import UserError

log = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")


@dataclass
class Window:
    """What one metered window measured. Filled when the ``with`` block ends.

    ``power_samples`` is the background power timeline, (seconds since the window opened, watts
    summed over the devices), where the meter has one; ``timeline_energy_j`` is its integral.
    ``state`` holds device readings at the edges (temperatures) for provenance.
    """

    energy_j: float = float("nan")
    duration_s: float = float("nan")
    energy_source: str = ""
    power_samples: list[tuple[float, float]] = field(default_factory=list)
    timeline_energy_j: float = float("nan")
    state: dict = field(default_factory=dict)

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


def integrate(samples: list[tuple[float, float]], t_end: float) -> float:
    """Trapezoid integral (J) of (t, W) samples over [0, t_end]; the edges hold their nearest sample."""
    if not samples:
        return float("nan")
    pts = sorted(samples)
    if pts[0][0] > 0:
        pts.insert(0, (0.0, pts[0][1]))
    if pts[-1][0] < t_end:
        pts.append((t_end, pts[-1][1]))
    total = 0.0
    for (t0, w0), (t1, w1) in zip(pts, pts[1:]):
        a, b = max(t0, 0.0), min(t1, t_end)
        if b > a:
            total += (b - a) * (w0 + w1) / 2
    return total


class PowerSampler:
    """A daemon thread that reads instantaneous power every ``interval_s`` seconds.

    Started at a window's opening and stopped at its close; it adds one read at each edge so that
    the timeline always covers the window.
    """

    def __init__(self, read_power_w: Callable[[], float], interval_s: float = 0.1):
        self.read_power_w = read_power_w
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, t0: float) -> None:
        self._t0 = t0
        self.samples = [(0.0, self.read_power_w())]
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append((time.perf_counter() - self._t0, self.read_power_w()))

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append((time.perf_counter() - self._t0, self.read_power_w()))
        return self.samples


class Meter(Protocol):
    """A meter reads a cumulative counter at both edges of a window."""

    source: str

    def read(self) -> float:
        """Cumulative energy in joules since an arbitrary origin."""

    def describe(self) -> dict:
        """Provenance of the numbers this meter gives (recorded with every row)."""


class _Windowed:
    """Shared window logic: read the counter, run the block, read it again.

    A meter with ``read_power_w`` also keeps a power timeline; a meter whose counter is not
    supported (``counter = False``) takes its energy from integrating that timeline.
    """

    source = ""
    counter = True
    sample_interval_s = 0.1

    def _sync(self) -> None:
        """Wait for queued device work so that it lands inside the window it belongs to."""

    def state(self) -> dict:
        """Device readings worth keeping at each edge of a window (temperatures)."""
        return {}

    read_power_w: Callable[[], float] | None = None

    class _Ctx:
        def __init__(self, meter: "_Windowed"):
            self.meter = meter
            self.window = Window(energy_source=meter.source)
            self.sampler = PowerSampler(meter.read_power_w, meter.sample_interval_s) \
                if meter.read_power_w is not None else None

        def __enter__(self) -> Window:
            m = self.meter
            m._sync()
            self.window.state.update({f"{k}_start": v for k, v in m.state().items()})
            self._e0 = m.read() if m.counter else 0.0
            self._t0 = time.perf_counter()
            if self.sampler:
                self.sampler.start(self._t0)
            return self.window

        def __exit__(self, exc_type, exc, tb) -> None:
            m = self.meter
            m._sync()
            t1 = time.perf_counter()
            e1 = m.read() if m.counter else 0.0
            w = self.window
            w.duration_s = t1 - self._t0
            if self.sampler:
                w.power_samples = self.sampler.stop()
                w.timeline_energy_j = integrate(w.power_samples, w.duration_s)
            w.energy_j = e1 - self._e0 if m.counter else w.timeline_energy_j
            w.state.update({f"{k}_end": v for k, v in m.state().items()})

    def window(self) -> "_Windowed._Ctx":
        """``with meter.window() as w: ...`` then ``w.energy_j``, ``w.duration_s``."""
        return _Windowed._Ctx(self)

    def device_keys(self) -> list[str]:
        """Names of the devices this meter measures, for the per-device lock (the host's CPUs here)."""
        import socket

        return [f"cpu-{socket.gethostname()}"]

    def close(self) -> None:
        """Release what the meter holds (NVML handles)."""


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
    """Sum of NVML's cumulative energy counters (mJ, Volta and newer) over the cell's GPUs.

    The GPUs are the visible ones (``CUDA_VISIBLE_DEVICES`` mapped by UUID, index or bus id). A
    power timeline (``nvmlDeviceGetPowerUsage``, summed) is kept at ``sample_interval_s``; where
    the counter is not supported, energy is the timeline's integral (``nvml-timeline``).

    A GPU on which another process runs is refused unless ``allow_shared`` (then recorded).
    """

    def __init__(self, nvml=None, *, allow_shared: bool = False, sample_interval_s: float = 0.1):
        from .hardware import nvml_gpus

        if nvml is None:
            import pynvml as nvml
        gpus = nvml_gpus(nvml)
        if not gpus:
            raise UserError("no NVIDIA GPU is visible (NVML found none)")
        nvml.nvmlInit()
        self._nvml = nvml
        self.gpus = gpus
        self.sample_interval_s = sample_interval_s
        self.handles = [nvml.nvmlDeviceGetHandleByUUID(g.uuid) for g in gpus]
        self.allow_shared = allow_shared
        self.other_processes = self._other_processes()
        if self.other_processes and not allow_shared:
            busy = "; ".join(f"{g.name} ({g.uuid}): pid {', '.join(map(str, pids))}"
                             for g, pids in self.other_processes.values())
            raise UserError(f"another process is using the GPU, so its energy would be counted too: {busy}. "
                            "Wait for it, pick another GPU with CUDA_VISIBLE_DEVICES, or set "
                            "measurement.allow_shared_gpu: true (recorded in every row)")
        try:
            for h in self.handles:
                nvml.nvmlDeviceGetTotalEnergyConsumption(h)
            self.counter = True
            self.source = "nvml"
        except nvml.NVMLError:
            log.warning("the GPU energy counter is not supported (pre-Volta?): integrating the power timeline")
            self.counter = False
            self.source = "nvml-timeline"
        self.read_power_w = self._power_w

    def _other_processes(self) -> dict:
        mine = {os.getpid(), *(p.pid for p in _children())}
        busy = {}
        for g, h in zip(self.gpus, self.handles):
            try:
                procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(h)
            except self._nvml.NVMLError:
                continue
            others = sorted({p.pid for p in procs} - mine)
            if others:
                busy[g.uuid] = (g, others)
        return busy

    def _sync(self) -> None:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass

    def read(self) -> float:
        return sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0

    def _power_w(self) -> float:
        return sum(self._nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0

    def state(self) -> dict:
        try:
            temps = [self._nvml.nvmlDeviceGetTemperature(h, self._nvml.NVML_TEMPERATURE_GPU) for h in self.handles]
        except self._nvml.NVMLError:
            return {}
        return {"temperature_c": max(temps)}

    def describe(self) -> dict:
        try:
            cuda_driver = self._nvml.nvmlSystemGetCudaDriverVersion()
            cuda_driver = f"{cuda_driver // 1000}.{cuda_driver % 1000 // 10}"
        except self._nvml.NVMLError:
            cuda_driver = ""
        g = self.gpus[0]
        return {"energy_source": self.source,
                "meter_detail": ",".join(f"{x.name} {x.uuid}" for x in self.gpus),
                "gpu_name": g.name, "gpu_uuids": ",".join(x.uuid for x in self.gpus), "n_gpus": len(self.gpus),
                "driver": g.driver, "cuda_driver_version": cuda_driver, "power_limit_w": g.power_limit_w,
                "shared_gpu": bool(self.other_processes)}

    def device_keys(self) -> list[str]:
        """What the per-device lock is taken on."""
        return [g.uuid for g in self.gpus]

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # already shut down
            pass


def _children():
    try:
        import psutil

        return psutil.Process(os.getpid()).children(recursive=True)
    except Exception:
        return []


def make_meter(kind: str = "auto", *, watts_per_core: float = 4.0, require_measured: bool = False,
               allow_shared_gpu: bool = False, sample_interval_s: float = 0.1):
    """The meter of that kind, or for ``auto`` the best one available here.

    Raises :class:`UserError` when a named meter is not available, or when ``require_measured``
    and only the CPU estimate is.
    """
    if kind in ("auto", "nvml"):
        try:
            return NvmlMeter(allow_shared=allow_shared_gpu, sample_interval_s=sample_interval_s)
        except ImportError as exc:
            if kind == "nvml":
                raise UserError(f"meter 'nvml' is not available: {exc}") from None
        except UserError as exc:
            if kind == "nvml" or "another process" in str(exc):
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
