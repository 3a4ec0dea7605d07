"""Raw workload files: use the copy in the data folder, download it when absent, check its sha256."""

from __future__ import annotations

import logging
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from llm_energy import UserError
from llm_energy.pipeline.io import atomic_path, sha256_of

log = logging.getLogger(__name__)


def read_text(path: str | Path, what: str, fix: str, allow_empty: bool = False, newlines: bool = True) -> str:
    """The UTF-8 text of a file a user placed; one line naming it when it is missing, a folder,
    binary (NUL or other control bytes), not UTF-8, or (unless ``allow_empty``) empty.

    ``what`` says what the file should be ("a PG-19 book"), ``fix`` what to do about it. Line ends
    become ``\n`` as ``Path.read_text`` makes them, unless ``newlines`` is false (for the csv module).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not {what}: {fix}") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror}): {fix}") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise UserError(f"{path}: binary data (a NUL byte at byte {nul}), not {what}: {fix}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}), not {what}: {fix}") from None
    controls = len(re.findall("[\x01-\x08\x0e-\x1f\x7f]", text[:1 << 20]))
    if controls > max(8, len(text[:1 << 20]) // 1000):
        raise UserError(f"{path}: {controls} control characters, binary data rather than {what}: {fix}")
    if not allow_empty and not text.strip():
        raise UserError(f"{path} is empty ({len(raw)} bytes), not {what}: {fix}")
    return text.replace("\r\n", "\n").replace("\r", "\n") if newlines else text



def check_sha256(path: str | Path, expected: str | None) -> None:
    """Raise a one-line :class:`UserError` when the file's sha256 is not the configured one."""
    if expected is None:
        return
    got = sha256_of(path)
    if got != expected:
        raise UserError(f"{path} has sha256 {got}, but the config expects {expected}: replace the file with "
                        "the published one, or set the workload's sha256 to null to accept this file")


def fetch_archive(dest: str | Path, url: str | None, root: str, include: list[str], sha256: str | None = None,
                  timeout_s: float = 600.0) -> Path:
    """Make the folder ``dest`` present from a .tar.gz: the archive's folder ``root`` becomes ``dest``,
    with only the members whose names start with one of ``include``.

    ``dest`` is filled in a temporary folder beside it and renamed when complete. The sha256, when
    given, is the archive's.
    """
    member = root
    import tarfile
    import tempfile

    dest = Path(dest)
    if dest.exists():
        return dest
    place = f"place the folder at {dest} (the {member}/ part of {url or 'the archive'})"
    if not url:
        raise UserError(f"{dest.name} is missing and the config has no URL for it: {place}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        archive = work / "archive.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(archive, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise UserError(f"could not download {url} ({getattr(exc, 'reason', exc)}); {place}") from None
        check_sha256(archive, sha256)
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers()
                       if any(m.name.startswith(p) for p in include) and (m.isfile() or m.isdir())]
            if not members:
                raise UserError(f"{url} has no {member}/ inside; {place}")
            tar.extractall(work / "x", members=members, filter="data")
        if not (work / "x" / root).is_dir():
            raise UserError(f"{url} has no {root}/ folder; {place}")
        (work / "x" / root).rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def fetch(dest: str | Path, url: str | None, sha256: str | None, timeout_s: float = 60.0) -> Path:
    """Make ``dest`` present: keep it when it is there, else download ``url`` (complete or absent).

    Offline, or without a URL, stops with one line saying which file to place where.
    """
    dest = Path(dest)
    if dest.exists():
        check_sha256(dest, sha256)
        return dest
    place = f"place the file at {dest}"
    if not url:
        raise UserError(f"{dest.name} is missing and the config has no URL for it: {place}")
    log.info("downloading %s -> %s", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, atomic_path(dest) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
            check_sha256(tmp, sha256)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"could not download {url} ({reason}); {place} (sha256 {sha256 or 'not checked'})") \
            from None
    return dest
