"""One measurement per device at a time: an advisory lock file per device, held for a whole cell.

Snakemake's resource limits only coordinate jobs of one Snakemake process; these locks also keep
apart two pipelines (or a pipeline and a manual ``python -m llm_energy measure``) on one machine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


def lock_dir() -> Path:
    """Where lock files live: ``$LLM_ENERGY_LOCK_DIR`` or a folder in the system's temp dir."""
    d = Path(os.environ.get("LLM_ENERGY_LOCK_DIR", "/tmp/llm-energy-locks"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def device_locks(keys: list[str], *, poll_s: float = 5.0, timeout_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on every key (sorted, so two cells never deadlock); wait while taken."""
    handles = []
    try:
        for key in sorted(set(keys)):
            path = lock_dir() / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")
            f = open(path, "a+")
            waited = 0.0
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    f.seek(0)
                    holder = f.read().strip() or "another process"
                    if timeout_s is not None and waited >= timeout_s:
                        f.close()
                        from . import UserError

                        raise UserError(f"device {key} is being measured by {holder}; gave up after "
                                        f"{waited:.0f} s") from None
                    if waited == 0:
                        log.info("device %s is being measured by %s; waiting", key, holder)
                    time.sleep(poll_s)
                    waited += poll_s
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}\n")
            f.flush()
            handles.append(f)
        yield
    finally:
        for f in handles:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
