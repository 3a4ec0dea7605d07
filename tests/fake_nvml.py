"""A stand-in for the ``pynvml`` module with the behaviour the meter relies on.

Each fake device draws a constant power; its energy counter (mJ) grows with wall time, as NVML's
does, in steps of ``counter_period_s`` (real counters update every 20-100 ms; 0 = continuously).
A device can lack the counter (pre-Volta) or the power fields, host another process, run hot,
have its power limit or clocks changed, or fall off the bus (:meth:`FakeNvml.lose`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_GPU_IS_LOST = 15
_MESSAGES = {NVML_ERROR_NOT_SUPPORTED: "Not Supported", NVML_ERROR_GPU_IS_LOST: "GPU is lost"}


class NVMLError(Exception):
    """Like pynvml's: built from an error code (``.value``); a message is accepted too."""

    def __init__(self, value=NVML_ERROR_NOT_SUPPORTED):
        self.value = value if isinstance(value, int) else NVML_ERROR_NOT_SUPPORTED
        super().__init__(_MESSAGES.get(self.value, str(value)))


@dataclass
class FakeDevice:
    uuid: str
    power_w: float
    name: str = "NVIDIA H100 80GB HBM3"
    counter_supported: bool = True
    pids: list[int] = field(default_factory=list)
    temperature_c: int | Callable[[], int] = 40
    counter_period_s: float = 0.0
    # Which of nvmlDeviceGetFieldValues' power fields the driver offers ("instant", "average").
    power_fields: tuple[str, ...] = ("instant", "average")
    average_power_w: float | None = None  # the 1-s average; default: power_w
    power_limit_w: float = 700.0
    sm_clock_mhz: int = 1980
    app_sm_clock_mhz: int = 1755
    slowdown_c: int = 87
    lost: bool = False


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
    NVML_CLOCK_SM = 1
    NVML_FI_DEV_POWER_AVERAGE = 185
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_VALUE_TYPE_UNSIGNED_INT = 1
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVMLError = NVMLError

    def __init__(self, devices: list[FakeDevice]):
        self.devices = devices
        self.t0 = time.perf_counter()
        self.inits = 0
        self.calls = 0  # per-device queries, to see what the meter costs

    def lose(self, uuid: str) -> None:
        """The device falls off the bus: every later query of it fails with "GPU is lost"."""
        next(d for d in self.devices if d.uuid == uuid).lost = True

    def _dev(self, h: FakeDevice) -> FakeDevice:
        self.calls += 1
        if h.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return h

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return "570.86.15"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12080

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return self._dev(next(d for d in self.devices if d.uuid == uuid))

    def nvmlDeviceGetName(self, h):
        return self._dev(h).name

    def nvmlDeviceGetUUID(self, h):
        return self._dev(h).uuid

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=f"00000000:{self.devices.index(self._dev(h)):02d}:00.0")

    def nvmlDeviceGetMemoryInfo(self, h):
        self._dev(h)
        return SimpleNamespace(total=80 * 2**30)

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return int(self._dev(h).power_limit_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self._dev(h).counter_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        t = time.perf_counter() - self.t0
        if h.counter_period_s:
            t = math.floor(t / h.counter_period_s) * h.counter_period_s
        return int(h.power_w * t * 1000)

    def nvmlDeviceGetPowerUsage(self, h):
        # Like Ampere and newer: the 1-s average.
        d = self._dev(h)
        return int((d.average_power_w if d.average_power_w is not None else d.power_w) * 1000)

    def nvmlDeviceGetFieldValues(self, h, field_ids):
        d = self._dev(h)
        values = []
        for fid in field_ids:
            kind = {self.NVML_FI_DEV_POWER_INSTANT: "instant", self.NVML_FI_DEV_POWER_AVERAGE: "average"}.get(fid)
            watts = d.power_w if kind == "instant" else (d.average_power_w if d.average_power_w is not None
                                                          else d.power_w)
            ok = kind in d.power_fields
            values.append(SimpleNamespace(
                fieldId=fid, valueType=self.NVML_VALUE_TYPE_UNSIGNED_INT,
                nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED,
                value=SimpleNamespace(uiVal=int(watts * 1000) if ok else 0)))
        return values

    def nvmlDeviceGetTemperature(self, h, sensor):
        t = self._dev(h).temperature_c
        return t() if callable(t) else t

    def nvmlDeviceGetTemperatureThreshold(self, h, threshold):
        return self._dev(h).slowdown_c

    def nvmlDeviceGetClockInfo(self, h, clock):
        return self._dev(h).sm_clock_mhz

    def nvmlDeviceGetApplicationsClock(self, h, clock):
        return self._dev(h).app_sm_clock_mhz

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p, usedGpuMemory=1 << 30) for p in self._dev(h).pids]
