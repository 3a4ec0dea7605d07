"""After ``kill -9`` of Snakemake: tell a stale lock of its working directory from a live run.

Snakemake locks its working directory (``.snakemake/locks/``) while it runs and removes the lock when
it ends; a run killed with SIGKILL cannot, and the next run then stops with a LockException.
Unlocking is only safe when no Snakemake, nor a job it started, still runs in that directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def processes_in(workdir: str | Path, needle: str = "snakemake") -> list[tuple[int, str]]:
    """(pid, command line) of the processes, other than this one, whose working directory is
    ``workdir`` and whose command line mentions ``needle`` (Snakemake itself, or a job script it
    wrote under ``.snakemake/scripts/``)."""
    workdir = Path(workdir).resolve()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).resolve() != workdir:
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or another user's process
            continue
        if needle in cmdline:
            found.append((int(proc.name), cmdline))
    return found


def lock_state(workdir: str | Path = ".") -> tuple[str, str]:
    """``("free", "")``, ``("stale", why)`` or ``("busy", who)`` for a Snakemake working directory."""
    locks = Path(workdir) / ".snakemake" / "locks"
    if not (locks.is_dir() and any(locks.iterdir())):
        return "free", ""
    running = processes_in(workdir)
    if running:
        pid, cmd = running[0]
        return "busy", f"pid {pid}: {cmd[:160]}"
    return "stale", f"{locks} is left from a run that was killed; no Snakemake runs in {Path(workdir).resolve()}"
