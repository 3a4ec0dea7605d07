"""NVML: the GPU's cumulative energy counter (Volta and newer), with its power timeline sampled beside it."""

from __future__ import annotations

import logging
import os

from llm_energy import UserError
from llm_energy.measurement.meters.base import DeviceLost, NoGpu, Windowed, counter_period_s
from llm_energy.pipeline.hardware import cell_gpus, narrow_visible, nvml_gpus, restore_visible

log = logging.getLogger(__name__)


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

class NvmlMeter(Windowed):
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
