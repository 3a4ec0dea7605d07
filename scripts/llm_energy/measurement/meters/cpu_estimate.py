"""The CPU-time estimate: CPU seconds of this process tree times a per-core power. A labelled
estimate (``energy_source`` ``cpu-estimate``), never passed off as a measurement."""

from __future__ import annotations

import logging
import os
import time

from llm_energy.measurement.meters.base import Windowed

log = logging.getLogger(__name__)


class CpuEstimateMeter(Windowed):
    """CPU-time x per-core power over this process and all its descendants (vLLM runs workers).

    Children that exit inside a window take their CPU time since the last reading with them (the
    engines used here keep their workers alive for the whole cell, so the window sees them). The
    reading never goes backwards: each process keeps the last CPU time seen of it, by (pid, start
    time), so a child that exits (or a zombie reaped) between two readings cannot make a window's
    energy negative, as it did when the sum ran only over the processes alive at each edge.

    This process is read with ``time.process_time()`` (the kernel's per-thread run time, to the
    microsecond, dead threads included); its descendants with ``/proc/<pid>/stat`` through psutil,
    which counts in 10 ms clock ticks. Read in ticks, a 0.2 s reference kernel came out in 0.04 J
    steps (5 % of its reading, ``docs/method.md``), too coarse to see a few-% drift between jobs.
    """

    source = "cpu-estimate"

    def __init__(self, watts_per_core: float):
        import psutil

        self.watts_per_core = float(watts_per_core)
        self._root = psutil.Process(os.getpid())
        self._root_key = (self._root.pid, self._root.create_time())  # read once, not at every window edge
        self._seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> last CPU seconds read

    def _cpu_seconds(self) -> float:
        import psutil

        # process_time() is this process's clock: after a fork the root is read like any other
        now = time.process_time() if os.getpid() == self._root.pid else sum(self._root.cpu_times()[:2])
        self._seen[self._root_key] = max(self._seen.get(self._root_key, 0.0), now)
        try:
            children = self._root.children(recursive=True)
        except psutil.Error:
            children = []
        for proc in children:
            try:
                t = proc.cpu_times()
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            self._seen[key] = max(self._seen.get(key, 0.0), t.user + t.system)
        return sum(self._seen.values())

    def read(self) -> float:
        return self._cpu_seconds() * self.watts_per_core

    def describe(self) -> dict:
        return {"energy_source": self.source, "meter_detail": f"cpu-seconds x {self.watts_per_core:g} W/core"}
