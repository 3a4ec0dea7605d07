"""Energy meters: a window around a piece of work, with the energy it used and where the number came from.

Backends, best first: ``nvml`` (the GPU's cumulative energy counter), ``rapl`` (the CPU package and
DRAM counters in /sys/class/powercap) and ``cpu-estimate`` (CPU seconds of this process tree times a
per-core power, a labelled estimate, never passed off as a measurement).
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from llm_energy import UserError

log = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")


@dataclass
class Window:
    """What one metered window measured. Filled when the ``with`` block ends.

    ``power_samples`` is the background power timeline, (seconds since the window opened, watts
    summed over the devices), where the meter has one; ``timeline_energy_j`` is its integral.
    ``power_avg_samples`` is the driver's 1-s averaged power at the same instants, kept apart
    (never integrated) where the timeline reads the instantaneous power and the driver has both.
    ``device_energy_j`` is the energy of each device (GPUs, in the meter's order) where the meter
    reads them apart; ``energy_j`` is their sum. ``state`` holds device readings at the edges
    (temperature, SM clock, power limit) as ``<name>_start`` / ``<name>_end``.
    """

    energy_j: float = float("nan")
    duration_s: float = float("nan")
    energy_source: str = ""
    power_samples: list[tuple[float, float]] = field(default_factory=list)
    power_avg_samples: list[tuple[float, float]] = field(default_factory=list)
    timeline_energy_j: float = float("nan")
    device_energy_j: list[float] = field(default_factory=list)
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
    """A daemon thread that reads power every ``interval_s`` seconds.

    Started at a window's opening and stopped at its close; it adds one read at each edge so that
    the timeline always covers the window. ``read_power_w`` returns watts, or (watts, 1-s average
    watts) where the meter reads both; the averages go to ``avg_samples``. A failed read ends the
    sampling (kept in ``error``; the window's own counter read then says whether the device is gone).
    """

    def __init__(self, read_power_w: Callable[[], float | tuple[float, float]], interval_s: float = 0.1):
        self.read_power_w = read_power_w
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self.avg_samples: list[tuple[float, float]] = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, t: float) -> bool:
        try:
            value = self.read_power_w()
        except Exception as exc:  # noqa: BLE001 - kept and reported; the sampling thread must not die loudly
            self.error = self.error or exc
            return False
        if isinstance(value, tuple):
            value, avg = value
            if avg is not None:
                self.avg_samples.append((t, avg))
        self.samples.append((t, value))
        return True

    def start(self, t0: float) -> None:
        self._t0 = t0
        self.samples, self.avg_samples, self.error = [], [], None
        self._sample(0.0)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._sample(time.perf_counter() - self._t0):
                return

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is None:
            self._sample(time.perf_counter() - self._t0)
        if self.error is not None:
            log.warning("the power timeline stopped early: %s", self.error)
        return self.samples


class Meter(Protocol):
    """A meter reads a cumulative counter at both edges of a window."""

    source: str

    def read(self) -> float:
        """Cumulative energy in joules since an arbitrary origin."""

    def describe(self) -> dict:
        """Provenance of the numbers this meter gives (recorded with every row)."""


class DeviceLost(UserError):
    """A metered device stopped answering in the middle of a cell (fell off the bus, driver reset)."""


class NoGpu(UserError):
    """NVML finds no visible GPU (the normal case on CPU machines: ``meter: auto`` falls back)."""


class _Windowed:
    """Shared window logic: read the counter, run the block, read it again.

    A meter with ``read_power_w`` also keeps a power timeline; a meter whose counter is not
    supported (``counter = False``) takes its energy from integrating that timeline. A meter with
    ``per_device`` reads one counter per device (``read_parts``) and keeps each device's energy.
    """

    source = ""
    counter = True
    per_device = False
    sample_interval_s = 0.1

    def _sync(self) -> None:
        """Wait for queued device work so that it lands inside the window it belongs to."""

    def state(self) -> dict:
        """Device readings worth keeping at each edge of a window (temperatures, clocks, power limit)."""
        return {}

    def read_parts(self) -> list[float]:
        """Cumulative energy (J) of each part the meter sums: one per device where ``per_device``."""
        return [self.read()]

    def temperature_c(self) -> float | None:
        """The hottest metered device's temperature, where the meter can tell."""
        return None

    def lost_device(self, exc: BaseException) -> DeviceLost | None:
        """Whether ``exc``, raised while a cell ran, means that a metered device is gone."""
        return exc if isinstance(exc, DeviceLost) else None

    def cool_down(self, target_c: float, max_s: float, poll_s: float = 0.5) -> float:
        """Wait until the devices are below ``target_c`` or ``max_s`` has passed; the seconds waited.

        Without a temperature reading (CPU meters) it returns at once.
        """
        t0 = time.perf_counter()
        temp = self.temperature_c()
        while temp is not None and temp >= target_c and time.perf_counter() - t0 < max_s:
            time.sleep(min(poll_s, max(max_s - (time.perf_counter() - t0), 0.0)))
            temp = self.temperature_c()
        waited = time.perf_counter() - t0
        if temp is not None and temp >= target_c:
            log.warning("still %.0f C after %.0f s of cool-down (target %.0f C): measuring anyway", temp, waited,
                        target_c)
        return waited

    read_power_w: Callable[[], float | tuple[float, float]] | None = None

    class _Ctx:
        def __init__(self, meter: _Windowed):
            self.meter = meter
            self.window = Window(energy_source=meter.source)
            self.sampler = PowerSampler(meter.read_power_w, meter.sample_interval_s) \
                if meter.read_power_w is not None else None

        def __enter__(self) -> Window:
            m = self.meter
            m._sync()
            self.window.state.update({f"{k}_start": v for k, v in m.state().items()})
            self._e0 = m.read_parts() if m.counter else []
            self._t0 = time.perf_counter()
            if self.sampler:
                self.sampler.start(self._t0)
            return self.window

        def __exit__(self, exc_type, exc, tb) -> None:
            m = self.meter
            m._sync()
            t1 = time.perf_counter()
            try:
                e1 = m.read_parts() if m.counter else []
            finally:  # the sampling thread ends with the window, even when the counter read fails
                samples = self.sampler.stop() if self.sampler else []
            w = self.window
            w.duration_s = t1 - self._t0
            if self.sampler:
                w.power_samples = samples
                w.power_avg_samples = self.sampler.avg_samples
                w.timeline_energy_j = integrate(w.power_samples, w.duration_s)
                lost = m.lost_device(self.sampler.error) if self.sampler.error is not None else None
                if lost is not None:
                    raise lost
            parts = [b - a for a, b in zip(self._e0, e1)]
            w.energy_j = sum(parts) if m.counter else w.timeline_energy_j
            w.device_energy_j = parts if m.per_device else []
            w.state.update({f"{k}_end": v for k, v in m.state().items()})

    def window(self) -> _Windowed._Ctx:
        """``with meter.window() as w: ...`` then ``w.energy_j``, ``w.duration_s``."""
        return _Windowed._Ctx(self)

    def device_keys(self) -> list[str]:
        """Names of the devices this meter measures, for the per-device lock (the host's CPUs here)."""
        import socket

        return [f"cpu-{socket.gethostname()}"]

    def close(self) -> None:
        """Release what the meter holds (NVML handles)."""


def counter_period_s(read: Callable[[], float], probe_s: float = 1.0, *, changes: int = 6,
                     poll_s: float = 0.0005) -> float:
    """The update period of a cumulative counter, detected: polled every ``poll_s`` for at most
    ``probe_s`` (or until it changed ``changes`` times), the median interval between its changes.

    NaN when it changed fewer than three times (two intervals) within the probe.
    """
    end = time.perf_counter() + probe_s
    last = read()
    stamps: list[float] = []
    while len(stamps) <= changes and time.perf_counter() < end:
        value = read()
        if value != last:
            stamps.append(time.perf_counter())
            last = value
        time.sleep(poll_s)
    if len(stamps) < 3:
        return float("nan")
    return float(statistics.median(b - a for a, b in zip(stamps, stamps[1:])))


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


# nvmlDeviceGetFieldValues' power fields (mW), in the order the timeline prefers them.
POWER_FIELDS = (("instant", "NVML_FI_DEV_POWER_INSTANT"), ("average", "NVML_FI_DEV_POWER_AVERAGE"))
# c_nvmlValue_t's member for each NVML_VALUE_TYPE_*.
_VALUE_ATTR = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
_NOT_SUPPORTED = 3  # NVML_ERROR_NOT_SUPPORTED


def _field_w(value) -> float | None:
    """Watts from one nvmlFieldValue_t (milliwatts), or None where the driver did not return it."""
    if getattr(value, "nvmlReturn", 1) != 0:
        return None
    return float(getattr(value.value, _VALUE_ATTR.get(int(value.valueType), "uiVal"))) / 1000.0


class NvmlMeter(_Windowed):
    """NVML's cumulative energy counters (mJ, Volta and newer) of the cell's GPUs, each kept and summed.

    The GPUs are the first ``n_gpus`` visible ones (``CUDA_VISIBLE_DEVICES`` mapped by UUID, index
    or bus id; all visible ones when ``n_gpus`` is None); when more are visible, the engine is
    narrowed to exactly these (:func:`llm_energy.pipeline.hardware.narrow_visible`). At start the meter
    detects the counter's update period (``counter_period_s``) and picks the power reading of
    its timeline (``power_reading``): the instantaneous power field where the driver has it, else
    the 1-s averaged field, else ``nvmlDeviceGetPowerUsage``; the average, where offered beside
    the instantaneous one, is kept apart. Where the counter is not supported, energy is the
    timeline's integral (``nvml-timeline``). Every window records temperature, SM clock,
    application clock and power limit at both edges. A GPU on which another process runs is
    refused unless ``allow_shared`` (then recorded); a GPU that stops answering mid-cell raises
    :class:`DeviceLost`.
    """

    per_device = True

    def __init__(self, nvml=None, *, allow_shared: bool = False, sample_interval_s: float = 0.1,
                 n_gpus: int | None = None, counter_probe_s: float = 1.0):
        from llm_energy.pipeline.hardware import cell_gpus, narrow_visible, nvml_gpus

        if nvml is None:
            import pynvml as nvml
        visible = nvml_gpus(nvml)
        if not visible:
            raise NoGpu("no NVIDIA GPU is visible (NVML found none)")
        self.gpus = cell_gpus(visible, n_gpus) if n_gpus else visible
        self.n_visible = len(visible)
        nvml.nvmlInit()
        self._nvml = nvml
        self.sample_interval_s = sample_interval_s
        self.handles = [nvml.nvmlDeviceGetHandleByUUID(g.uuid) for g in self.gpus]
        self.allow_shared = allow_shared
        self._check_exclusive()
        self._pick_counter()
        self.power_reading, self._power_fields = self._pick_power_reading()
        self.counter_period_s = counter_period_s(lambda: self._energy_j(0), counter_probe_s) \
            if self.counter and counter_probe_s > 0 else float("nan")
        self.slowdown_c = self._slowdown_c()
        self.read_power_w = self._power_w
        self._previous_visible = narrow_visible(self.gpus, visible)  # last: only for a usable meter
        log.info("NVML meter on %s: counter period %.3f s, timeline from the %s power", ", ".join(
            f"GPU {g.index} {g.uuid}" for g in self.gpus), self.counter_period_s, self.power_reading)

    def _check_exclusive(self) -> None:
        self.other_processes = self._other_processes()
        if self.other_processes and not self.allow_shared:
            busy = "; ".join(f"{g.name} ({g.uuid}): pid {', '.join(map(str, pids))}"
                             for g, pids in self.other_processes.values())
            raise UserError(f"another process is using the GPU, so its energy would be counted too: {busy}. "
                            "Wait for it, pick another GPU with CUDA_VISIBLE_DEVICES, or set "
                            "measurement.allow_shared_gpu: true (recorded in every row)")

    def _pick_counter(self) -> None:
        try:
            for h in self.handles:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)
            self.counter, self.source = True, "nvml"
        except self._nvml.NVMLError:
            log.warning("the GPU energy counter is not supported (pre-Volta?): integrating the power timeline")
            self.counter, self.source = False, "nvml-timeline"

    def _pick_power_reading(self) -> tuple[str, list[int]]:
        """("instant" | "average" | "usage", the field ids a timeline sample reads)."""
        nv = self._nvml
        ids = {name: getattr(nv, const, None) for name, const in POWER_FIELDS}
        if None in ids.values() or not hasattr(nv, "nvmlDeviceGetFieldValues"):
            return "usage", []
        try:
            offered = [[_field_w(v) for v in nv.nvmlDeviceGetFieldValues(h, list(ids.values()))]
                       for h in self.handles]
        except (nv.NVMLError, AttributeError, TypeError):  # an old driver or binding without field values
            return "usage", []
        instant, average = (all(v[i] is not None for v in offered) for i in (0, 1))
        if instant:
            return "instant", [ids["instant"]] + ([ids["average"]] if average else [])
        if average:
            return "average", [ids["average"]]
        return "usage", []

    def _slowdown_c(self) -> float:
        """The lowest slowdown temperature of the metered GPUs (NaN where NVML does not say)."""
        nv = self._nvml
        try:
            return float(min(nv.nvmlDeviceGetTemperatureThreshold(h, nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)
                             for h in self.handles))
        except (nv.NVMLError, AttributeError):
            return float("nan")

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

    def _lost(self, k: int, exc: Exception) -> DeviceLost:
        g = self.gpus[k]
        return DeviceLost(f"GPU {g.index} ({g.name}, {g.uuid}) stopped answering NVML during the cell ({exc}): "
                          "it fell off the bus or its driver was reset; see `nvidia-smi` and the kernel log "
                          "(Xid errors), then measure the cell again")

    def _energy_j(self, k: int) -> float:
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handles[k]) / 1000.0
        except self._nvml.NVMLError as exc:  # the counter answered at start: the device is gone
            raise self._lost(k, exc) from None

    def read_parts(self) -> list[float]:
        return [self._energy_j(k) for k in range(len(self.handles))]

    def read(self) -> float:
        return sum(self.read_parts())

    def _power_w(self) -> float | tuple[float, float]:
        """Summed power of the metered GPUs in the chosen reading; with (instant, 1-s average) both."""
        nv = self._nvml
        if not self._power_fields:
            return sum(nv.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0
        values = [[_field_w(v) for v in nv.nvmlDeviceGetFieldValues(h, self._power_fields)] for h in self.handles]
        if any(w is None for v in values for w in v):
            raise RuntimeError(f"NVML returned no {self.power_reading} power for a field it offered at start")
        sums = [sum(v[i] for v in values) for i in range(len(self._power_fields))]
        return (sums[0], sums[1]) if len(sums) == 2 else sums[0]

    def lost_device(self, exc: BaseException) -> DeviceLost | None:
        """``exc`` itself when it is a :class:`DeviceLost`, else the first metered GPU that no longer
        answers NVML (an engine error such as a CUDA launch failure is often the first sign)."""
        if isinstance(exc, DeviceLost):
            return exc
        nv = self._nvml
        for k, h in enumerate(self.handles):
            try:
                nv.nvmlDeviceGetPowerUsage(h)
            except nv.NVMLError as err:
                if getattr(err, "value", None) != _NOT_SUPPORTED:
                    return self._lost(k, err)
        return None

    def state(self) -> dict:
        nv = self._nvml
        sm = getattr(nv, "NVML_CLOCK_SM", 1)
        readings = (("temperature_c", max, lambda h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                    ("sm_clock_mhz", min, lambda h: nv.nvmlDeviceGetClockInfo(h, sm)),
                    ("app_sm_clock_mhz", min, lambda h: nv.nvmlDeviceGetApplicationsClock(h, sm)),
                    ("power_limit_total_w", sum, lambda h: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0))
        out = {}
        for key, combine, read in readings:
            try:
                out[key] = combine(read(h) for h in self.handles)
            except (nv.NVMLError, AttributeError):  # not supported here (or the device is gone: read() says so)
                continue
        return out

    def temperature_c(self) -> float | None:
        return self.state().get("temperature_c")

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
                "n_visible_gpus": self.n_visible,
                "driver": g.driver, "cuda_driver_version": cuda_driver, "power_limit_w": g.power_limit_w,
                "shared_gpu": bool(self.other_processes),
                "nvml_counter_period_s": self.counter_period_s, "power_reading": self.power_reading,
                "temp_slowdown_c": self.slowdown_c}

    def device_keys(self) -> list[str]:
        """What the per-device lock is taken on."""
        return [g.uuid for g in self.gpus]

    def close(self) -> None:
        from llm_energy.pipeline.hardware import restore_visible

        restore_visible(self._previous_visible)
        self._previous_visible = None
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
