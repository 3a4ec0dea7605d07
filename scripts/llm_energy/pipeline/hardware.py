"""Detect the hardware slug of this machine: the GPU model when one is visible, else the CPU model."""

from __future__ import annotations

import logging
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from llm_energy import UserError

log = logging.getLogger(__name__)

_CPU_NOISE = re.compile(
    r"\((r|tm)\)|\bcpu\b|\bprocessor\b|\b\d+-core\b|\bwith radeon.*$|@.*$|\bcore\(tm\)|\bgen\b", re.I
)


def slugify(name: str) -> str:
    """Lower-case, ASCII, words joined by dashes: 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'."""
    name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.I)
    name = re.sub(r"^geforce\s+|^tesla\s+", "", name, flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return re.sub(r"-+", "-", slug)


def cpu_model_name() -> str:
    """The CPU model string from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_slug(model_name: str | None = None) -> str:
    """'Intel(R) Xeon(R) Processor' -> 'cpu-intel-xeon'; 'AMD EPYC 7B13 64-Core Processor' -> 'cpu-amd-epyc-7b13'."""
    name = _CPU_NOISE.sub(" ", model_name if model_name is not None else cpu_model_name())
    return "cpu-" + (slugify(name) or "unknown")


@dataclass
class GpuInfo:
    """One NVIDIA GPU as NVML sees it."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str
    memory_bytes: int
    power_limit_w: float | None
    driver: str


def nvml_gpus(pynvml=None) -> list[GpuInfo]:
    """The GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applied by UUID, index or bus id).

    NVML itself ignores ``CUDA_VISIBLE_DEVICES``, so the mapping is done here. Empty without NVML.
    ``pynvml`` may be given (a stand-in in tests); by default the real module is imported.
    """
    if pynvml is None:
        try:
            import pynvml
        except ImportError:
            return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no GPU: the normal case on CPU machines
        return []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            gpus.append(_gpu_info(pynvml, i, _str(driver)))
    finally:
        pynvml.nvmlShutdown()
    return select_visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))


def _gpu_info(pynvml, i: int, driver: str) -> GpuInfo:
    """NVML's facts about GPU ``i``; one line (:class:`UserError`) when the GPU does not answer."""
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        try:
            limit = pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0
        except pynvml.NVMLError as exc:
            if getattr(exc, "value", None) == 15:  # NVML_ERROR_GPU_IS_LOST
                raise
            limit = None
        return GpuInfo(index=i, name=_str(pynvml.nvmlDeviceGetName(h)), uuid=_str(pynvml.nvmlDeviceGetUUID(h)),
                       pci_bus_id=_str(pynvml.nvmlDeviceGetPciInfo(h).busId),
                       memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(h).total), power_limit_w=limit, driver=driver)
    except pynvml.NVMLError as exc:
        raise UserError(f"GPU {i} does not answer NVML ({exc}): it fell off the bus or its driver needs a reset; "
                        "see `nvidia-smi` and the kernel log (Xid errors)") from None


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def select_visible(gpus: list[GpuInfo], visible: str | None) -> list[GpuInfo]:
    """Apply a ``CUDA_VISIBLE_DEVICES`` value (indices, UUIDs or UUID prefixes) to NVML's device list."""
    if visible is None:
        return gpus
    chosen = []
    for token in filter(None, (t.strip() for t in visible.split(","))):
        if token.isdigit():
            match = [g for g in gpus if g.index == int(token)]
        else:
            match = [g for g in gpus if g.uuid.startswith(token) or g.pci_bus_id.lower() == token.lower()]
        if not match:
            break  # CUDA stops at the first invalid entry
        chosen.append(match[0])
    return chosen


def detect() -> str:
    """The hardware slug: the first visible GPU's model, else ``cpu-<model>``."""
    gpus = nvml_gpus()
    if gpus:
        return slugify(gpus[0].name)
    return cpu_slug()


def visible_gpu_count() -> int:
    """GPUs this process may use (NVML's list filtered by ``CUDA_VISIBLE_DEVICES``)."""
    return len(select_visible(nvml_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES")))


def cell_gpus(visible: list[GpuInfo], n: int) -> list[GpuInfo]:
    """The GPUs a cell of tensor-parallel size ``n`` runs on: the first ``n`` visible ones.

    An engine numbers the visible GPUs from 0 and a size-``n`` engine uses devices 0..n-1, so
    these are the GPUs whose energy is the cell's; the rest of the node is not metered.
    """
    if n < 1:
        raise ValueError(f"a cell runs on at least one GPU, not {n}")
    if len(visible) < n:
        raise UserError(f"the cell runs on {n} GPU(s) and {len(visible)} are visible "
                        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return visible[:n]


def narrow_visible(chosen: list[GpuInfo], visible: list[GpuInfo], environ=None) -> str | None:
    """Make exactly ``chosen`` visible to the engine: ``CUDA_VISIBLE_DEVICES`` set to their UUIDs.

    Only when more GPUs are visible than the cell uses; returns the previous value (``""`` when it
    was unset) for :func:`restore_visible`, or None when nothing changed. UUIDs, not indices, so
    that CUDA's numbering (fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``) cannot pick
    other devices than the metered ones. Must run before CUDA is initialised in this process
    (torch, vLLM); engine worker processes started later inherit it in any case.
    """
    environ = os.environ if environ is None else environ
    if len(chosen) >= len(visible):
        return None
    previous = environ.get("CUDA_VISIBLE_DEVICES", "")
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(g.uuid for g in chosen)
    log.info("the cell uses %d of the %d visible GPUs: CUDA_VISIBLE_DEVICES=%s (was %s), so that the engine "
             "runs on exactly the metered ones%s", len(chosen), len(visible), environ["CUDA_VISIBLE_DEVICES"],
             previous or "unset", _cuda_already_initialised())
    return previous


def restore_visible(previous: str | None, environ=None) -> None:
    """Undo :func:`narrow_visible` (nothing when it changed nothing)."""
    environ = os.environ if environ is None else environ
    if previous is None:
        return
    if previous:
        environ["CUDA_VISIBLE_DEVICES"] = previous
    else:
        environ.pop("CUDA_VISIBLE_DEVICES", None)


def _cuda_already_initialised() -> str:
    """A warning suffix when torch has already initialised CUDA here (the narrowing then reaches only
    processes started later, e.g. vLLM's workers; this process keeps its device 0, the first metered)."""
    import sys

    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            return " (CUDA was already initialised in this process: it applies to processes started from now on)"
    except Exception:  # noqa: BLE001 - a stub or broken torch: nothing to add
        pass
    return ""


def check_hardware(requested: str) -> str:
    """Refuse to measure a cell for hardware this machine is not."""
    here = detect()
    if requested != here:
        raise UserError(
            f"this machine is {here!r}, but the cell is for {requested!r}: measure it on a machine detected as "
            f"{requested} (`python -m llm_energy measure --hardware {requested} ...` there) and copy the file into "
            f"results/measurements/{requested}/ here")
    return here
