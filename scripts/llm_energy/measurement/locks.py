"""One measurement per device at a time: an advisory lock file per device, held for a whole cell.

Snakemake's resource limits only coordinate jobs of one Snakemake process; these locks also keep
apart two pipelines (or a pipeline and a manual ``python -m llm_energy measure``) on one machine,
also of different users: the lock folder is made like ``/tmp`` (mode ``1777``: everyone may add a
file, only its owner may remove it) and every lock file ``0666``, so that whoever comes second can
still open, and wait on, a lock file made by someone else.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from llm_energy import UserError

log = logging.getLogger(__name__)

DEFAULT_LOCK_DIR = "/tmp/llm-energy-locks"
DIR_MODE = 0o1777  # shared by every user of the machine, like /tmp
FILE_MODE = 0o666
ELSEWHERE = "set LLM_ENERGY_LOCK_DIR to a folder you can write"
# Seconds a cell waits for a busy device before it fails (unset: as long as it takes; 0: not at all).
LOCK_TIMEOUT_ENV = "LLM_ENERGY_LOCK_TIMEOUT"
_HOW_NOT_TO_WAIT = (f"python -m llm_energy measure --no-wait or --lock-timeout SECONDS; pipeline jobs: "
                    f"{LOCK_TIMEOUT_ENV}=SECONDS snakemake ...")
_TIMEOUT_SET = f"--no-wait, --lock-timeout or {LOCK_TIMEOUT_ENV}"
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _user_error(msg: str):
    return UserError(msg)


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def lock_dir() -> Path:
    """Where lock files live: ``$LLM_ENERGY_LOCK_DIR`` or a folder in the system's temp dir.

    A folder made here gets mode ``1777`` (set after ``mkdir``, which the umask would narrow).
    """
    d = Path(os.environ.get("LLM_ENERGY_LOCK_DIR", DEFAULT_LOCK_DIR))
    try:
        d.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(d, 0o700)  # private until the chmod below, so that nobody else sees it half made
        except FileExistsError:
            if not d.is_dir():
                raise _user_error(f"device-lock folder {d} exists and is not a folder; remove it, or "
                                  f"{ELSEWHERE}") from None
        else:
            os.chmod(d, DIR_MODE)
    except OSError as exc:
        raise _user_error(f"cannot create the device-lock folder {d} ({exc.strerror or exc}); {ELSEWHERE}") \
            from None
    return d


def _open_lock_file(path: Path) -> IO[str]:
    """Open (or create, ``0666``) one lock file for reading and writing; one line on why not."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)  # a planted symlink must not be truncated through
    for attempt in (1, 2):
        try:
            return os.fdopen(_open_fd(path, flags), "r+")
        except PermissionError as exc:
            if attempt == 1:  # another user's process may be between its mkdir and chmod of the folder
                time.sleep(0.2)
                continue
            raise _user_error(_permission_line(path, exc)) from None
        except OSError as exc:
            raise _user_error(f"cannot open device lock {path} ({exc.strerror or exc}); {ELSEWHERE}") from None


def _open_fd(path: Path, flags: int) -> int:
    while True:
        try:  # no O_CREAT first: fs.protected_regular refuses it on another user's file in a sticky folder
            return os.open(path, flags)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # another process made it just now: open that one
            continue
        try:
            os.fchmod(fd, FILE_MODE)  # the umask narrowed os.open's mode
        except OSError:
            os.close(fd)
            raise
        return fd


def _permission_line(path: Path, exc: OSError) -> str:
    """Which file, why it cannot be opened, and what to do, on one line."""
    folder = path.parent
    try:
        fst = os.stat(path, follow_symlinks=False)
    except OSError:
        fst = None
    try:
        dst = os.stat(folder)
    except OSError:
        dst = None
    if fst is not None:
        why = (f"it belongs to {_user(fst.st_uid)} with mode {stat.S_IMODE(fst.st_mode):04o}, which you cannot "
               f"write")
        fix = [f"chmod 666 {path}"]
        who = _user(fst.st_uid)
    elif dst is not None:
        why = (f"folder {folder} belongs to {_user(dst.st_uid)} with mode {stat.S_IMODE(dst.st_mode):04o}, where you "
               f"cannot create a file")
        fix = [f"chmod 1777 {folder}"]
        who = _user(dst.st_uid)
    else:
        return f"cannot open device lock {path} ({exc.strerror or exc}); {ELSEWHERE}"
    if fst is not None and dst is not None and not os.access(folder, os.W_OK | os.X_OK):
        fix = [f"chmod 1777 {folder}", f"chmod 666 {folder}/*.lock"]
    return f"cannot open device lock {path}: {why}; {ELSEWHERE}, or ask {who} to run `{' && '.join(fix)}`"


@contextmanager
def device_locks(keys: list[str], *, poll_s: float = 5.0, timeout_s: float | None = None,
                 report_s: float = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on every key (sorted, so two cells never deadlock); wait while taken.

    ``timeout_s`` (default: ``$LLM_ENERGY_LOCK_TIMEOUT``, unset: no limit; 0: do not wait) bounds the
    wait: a Snakemake job reads the variable, so that choosing not to wait changes no rule's params (which
    would re-run finished measurements). While waiting, a line every ``report_s`` says who holds it.
    """
    if timeout_s is None:
        timeout_s = lock_timeout_from_env()
    handles = []
    try:
        for key in sorted(set(keys)):
            path = lock_dir() / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")
            f = _open_lock_file(path)
            try:
                _wait_for(f, key, poll_s=poll_s, timeout_s=timeout_s, report_s=report_s)
            except OSError as exc:  # e.g. ENOLCK: a network file system without flock
                f.close()
                raise _user_error(f"cannot lock {path} ({exc.strerror or exc}); {ELSEWHERE} on a local "
                                  f"disk") from None
            except BaseException:
                f.close()
                raise
            f.seek(0)
            f.truncate()
            since = datetime.now(UTC).strftime(STAMP)
            f.write(f"pid {os.getpid()} ({_user(os.geteuid())}) in {os.getcwd()} since {since}\n")
            f.flush()
            handles.append(f)
        yield
    finally:
        for f in handles:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()


def lock_timeout_from_env() -> float | None:
    """``$LLM_ENERGY_LOCK_TIMEOUT`` in seconds (None where unset or empty: wait as long as it takes)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise _user_error(f"{LOCK_TIMEOUT_ENV} must be a number of seconds (0: do not wait for a busy device), "
                          f"got {raw!r}")
    return value


def _wait_for(f: IO[str], key: str, *, poll_s: float, timeout_s: float | None, report_s: float) -> None:
    """Take the lock of an open lock file, waiting while another process holds it: a line when the wait
    starts and every ``report_s`` while it lasts, a one-line :class:`UserError` after ``timeout_s``."""
    started = time.monotonic()
    reported = None
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if reported is not None:
                log.info("device %s is free after %s; measuring", key, _span(time.monotonic() - started))
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        waited = now - started
        if timeout_s is not None and waited >= timeout_s:
            how = "at once" if timeout_s == 0 else f"after waiting {_span(waited)}"
            raise _user_error(f"device {key} is being measured by {_holder(f)}; gave up {how} (lock timeout "
                              f"{timeout_s:g} s, set by {_TIMEOUT_SET}); wait for that measurement to end, or "
                              f"stop it, then rerun") from None
        if reported is None:
            log.info("device %s is being measured by %s; waiting for it (a line every %s; to fail instead: %s)",
                     key, _holder(f), _span(report_s), _HOW_NOT_TO_WAIT)
            reported = now
        elif now - reported >= report_s:
            log.info("still waiting for device %s after %s: it is being measured by %s", key, _span(waited),
                     _holder(f))
            reported = now
        left = poll_s if timeout_s is None else max(0.0, min(poll_s, timeout_s - waited))
        time.sleep(left)


def _holder(f: IO[str]) -> str:
    """Who holds a lock file and for how long: what the holder wrote in it (pid, user, folder), and the
    time it took the lock (written there; for a holder of an older version, the file's mtime)."""
    f.seek(0)
    text = f.read().strip().splitlines()
    line = text[0] if text else ""
    found = re.search(r" since (\S+)$", line)
    try:
        since = datetime.strptime(found[1], STAMP).replace(tzinfo=UTC) if found else \
            datetime.fromtimestamp(os.fstat(f.fileno()).st_mtime, UTC)
    except (ValueError, OSError):
        since = None
    who = (line[:found.start()] if found else line) or "another process"
    if since is None:
        return who
    held = max(0.0, (datetime.now(UTC) - since).total_seconds())
    return f"{who}, which has held it for {_span(held)} (since {since.strftime('%Y-%m-%d %H:%M:%S')} UTC)"


def _span(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min" + (f" {s % 60:02d} s" if s % 60 else "")
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
