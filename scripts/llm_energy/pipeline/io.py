"""Write files so that they are complete or absent: a temporary name in the same folder, then a rename.

The file renamed into place has the mode a plain ``open(path, "w")`` would give it (``0666`` less the
umask), not the private ``0600`` of :func:`tempfile.mkstemp`, so that a group sharing ``results/`` and
``paper/`` can read what the pipeline writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere (or an old kernel): set and restore at once. Not thread-safe, hence the second choice.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The permission bits of a new file created by a plain write: ``0666 & ~umask``."""
    return 0o666 & ~current_umask()


def plain_dir_mode() -> int:
    """The permission bits of a new folder created by a plain ``mkdir``: ``0777 & ~umask``."""
    return 0o777 & ~current_umask()


def temp_dir_beside(path: str | Path) -> Path:
    """A new empty folder beside ``path`` to fill and then rename onto it, with a plain folder's mode
    (:func:`tempfile.mkdtemp` makes it ``0700``, which the rename would carry into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        os.chmod(tmp, plain_dir_mode())
    except OSError:  # a file system without Unix modes: keep what it gives
        pass
    return tmp


def plain_modes(folder: str | Path) -> None:
    """Give every file in ``folder`` a plain file's mode: some writers (safetensors) create ``0600``
    files, which would keep a model folder from the group that shares it."""
    mode = plain_file_mode()
    for f in Path(folder).rglob("*"):
        if f.is_file():
            try:
                os.chmod(f, mode)
            except OSError:
                pass


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary has the mode a plain write of ``path`` would have (``0666 & ~umask``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp)
    try:
        try:
            os.fchmod(fd, plain_file_mode())
        except OSError:  # a file system without Unix modes (some FUSE/SMB mounts): keep what it gives
            pass
        finally:
            os.close(fd)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table as Parquet, atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_json(obj, path: str | Path) -> None:
    """Write JSON (sorted keys, indented), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text: str, path: str | Path) -> None:
    """Write a text file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
