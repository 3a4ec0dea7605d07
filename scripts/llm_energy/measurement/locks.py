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
from pathlib import Path
from typing import IO

from llm_energy import UserError

log = logging.getLogger(__name__)

DEFAULT_LOCK_DIR = "/tmp/llm-energy-locks"
DIR_MODE = 0o1777  # shared by every user of the machine, like /tmp
FILE_MODE = 0o666
ELSEWHERE = "set LLM_ENERGY_LOCK_DIR to a folder you can write"


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
def device_locks(keys: list[str], *, poll_s: float = 5.0, timeout_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on every key (sorted, so two cells never deadlock); wait while taken."""
    handles = []
    try:
        for key in sorted(set(keys)):
            path = lock_dir() / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")
            f = _open_lock_file(path)
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
                        raise _user_error(f"device {key} is being measured by {holder}; gave up after "
                                          f"{waited:.0f} s") from None
                    if waited == 0:
                        log.info("device %s is being measured by %s; waiting", key, holder)
                    time.sleep(poll_s)
                    waited += poll_s
                except OSError as exc:  # e.g. ENOLCK: a network file system without flock
                    f.close()
                    raise _user_error(f"cannot lock {path} ({exc.strerror or exc}); {ELSEWHERE} on a local "
                                      f"disk") from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} ({_user(os.geteuid())})\n")
            f.flush()
            handles.append(f)
        yield
    finally:
        for f in handles:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
