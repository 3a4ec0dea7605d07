"""One metering job's devices, the same for every job that meters: the measurement cell, the replay,
the online rate sweep and the benchmarks.

:class:`MeteredJob` takes a constructed (not loaded) backend and the protocol, and as a context manager:

1. makes the protocol's meter over exactly the GPUs the backend runs on (its tensor-parallel size).
   It does so before the engine loads, because an NVML meter narrows ``CUDA_VISIBLE_DEVICES`` to them;
2. takes the lock of every metered device (waiting while another job measures there);
3. loads the model, timed (``load_s``);
4. on every way out, the backend closed (an online server stopped), the locks released and the meter
   closed, in that order.

A metered device that stops answering (a :class:`~llm_energy.measurement.meters.DeviceLost` raised inside, or an
engine error while a metered GPU no longer answers NVML) leaves the block as a ``DeviceLost``, one
line; ``on_lost(lost)`` runs first (the cell keeps the rows it measured) and may raise its own.

``cell.cell_job`` builds one from the config (hardware check, model folder, backend); tests and the
command line build one from a backend of their own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import ExitStack

from llm_energy.measurement.locks import device_locks
from llm_energy.measurement.meters import DeviceLost

log = logging.getLogger(__name__)


class MeteredJob:
    """A backend, its protocol and (inside ``with``) its meter, locks and loaded model."""

    def __init__(self, backend, protocol, *, on_lost: Callable[[DeviceLost], None] | None = None):
        self.backend = backend
        self.protocol = protocol
        self.on_lost = on_lost
        self.meter = None
        self.load_s = math.nan
        self._stack: ExitStack | None = None
        self._failing = False  # set while closing after an error: a close that fails too is only logged

    def __enter__(self) -> MeteredJob:
        self.meter = self.protocol.make_meter(n_gpus=self.backend.tensor_parallel)
        stack = ExitStack()
        stack.callback(self.meter.close)
        try:
            stack.enter_context(device_locks(self.meter.device_keys()))
            # Closed on every way out, a load that failed half-way too (an online server may be up).
            stack.callback(self._close_backend)
            t = time.perf_counter()
            self.backend.load()
            self.load_s = time.perf_counter() - t
        except BaseException as exc:
            lost = self._lost(exc)
            self._failing = True
            stack.close()
            if lost is not None:
                self._raise_lost(lost, exc)
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        lost = self._lost(exc) if exc is not None else None  # while the meter can still ask the devices
        self._failing = exc is not None
        stack.close()
        if lost is not None:
            self._raise_lost(lost, exc)
        return False

    def _lost(self, exc: BaseException) -> DeviceLost | None:
        if self.meter is None or not isinstance(exc, Exception):
            return None
        try:
            return self.meter.lost_device(exc)
        except Exception:  # noqa: BLE001 - asking a broken driver must not hide the job's own error
            log.debug("could not ask the meter whether a device was lost", exc_info=True)
            return None

    def _raise_lost(self, lost: DeviceLost, exc: BaseException):
        if self.on_lost is not None:
            self.on_lost(lost)  # may raise its own DeviceLost (with what it kept)
        if lost is exc:
            raise lost
        raise lost from exc

    def _close_backend(self) -> None:
        try:
            self.backend.close()
        except Exception:  # noqa: BLE001
            if not self._failing:
                raise  # a clean run whose close fails says so
            # The job is already failing (a lost device, an engine error): its error is the one to see.
            log.warning("closing the backend after the job failed raised too", exc_info=True)
