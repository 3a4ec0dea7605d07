"""What every meter shares: a window around a piece of work (:class:`Window`), power sampled beside it
(:class:`PowerSampler`), the trapezoid integral of a timeline, and the windowed-meter base class."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from llm_energy import UserError

log = logging.getLogger(__name__)


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

class Windowed:
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
        def __init__(self, meter: Windowed):
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

    def window(self) -> Windowed._Ctx:
        """``with meter.window() as w: ...`` then ``w.energy_j``, ``w.duration_s``."""
        return Windowed._Ctx(self)

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
