"""A stand-in for the ``pynvml`` module with the behaviour the meter relies on.

Each fake device draws a constant power; its energy counter (mJ) grows with wall time, as NVML's
does. A device can lack the counter (pre-Volta) or host another process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace


class NVMLError(Exception):
    pass


@dataclass
class FakeDevice:
    uuid: str
    power_w: float
    name: str = "NVIDIA H100 80GB HBM3"
    counter_supported: bool = True
    pids: list[int] = field(default_factory=list)
    temperature_c: int = 40


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError

    def __init__(self, devices: list[FakeDevice]):
        self.devices = devices
        self.t0 = time.perf_counter()
        self.inits = 0

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
        return next(d for d in self.devices if d.uuid == uuid)

    def nvmlDeviceGetName(self, h):
        return h.name

    def nvmlDeviceGetUUID(self, h):
        return h.uuid

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=f"00000000:{self.devices.index(h):02d}:00.0")

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=80 * 2**30)

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700_000

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not h.counter_supported:
            raise NVMLError("Not Supported")
        return int(h.power_w * (time.perf_counter() - self.t0) * 1000)

    def nvmlDeviceGetPowerUsage(self, h):
        return int(h.power_w * 1000)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return h.temperature_c

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p, usedGpuMemory=1 << 30) for p in h.pids]
