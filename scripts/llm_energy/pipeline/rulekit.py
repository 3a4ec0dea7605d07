"""Glue for Snakemake rule scripts: logging to the rule's log and the terminal, one-line user errors.

A rule's log holds its whole run. Two things fight that: vLLM applies its own ``logging.config.dictConfig``
when an engine starts, which flushes and closes every handler in the process, and vLLM's loggers do
not propagate to the root logger. So the file handler opens its file in append mode (a closed
append-mode handler reopens on the next record; one in write mode stays closed for good), the file
is emptied once when logging is set up, and the vLLM backends route vLLM's loggers, in every engine
process, to the files listed by :func:`log_files` (see ``backends/vllm.py``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llm_energy import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_path`` (the rule's ``log:`` file, emptied first).

    Python warnings go to the same handlers (``py.warnings``).
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        path = Path(log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")  # one run per log file; appends from here on (see the module docstring)
        handlers.append(logging.FileHandler(path, mode="a", encoding="utf-8"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    for noisy in ("matplotlib", "PIL", "fontTools", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_files() -> list[str]:
    """The files the root logger writes to (absolute paths), e.g. the rule's log."""
    return [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


@contextmanager
def kept_log_handlers() -> Iterator[None]:
    """Put the root logger's handlers back after code that may reconfigure logging (an engine start)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        yield
    finally:
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)


def run_rule(snakemake, body: Callable[[object], None]) -> None:
    """Run a rule script's body; a :class:`UserError` ends it with one line and exit status 1.

    Unexpected exceptions keep their traceback (in the log): those are bugs, not user mistakes.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    setup_logging(log_path)
    try:
        body(snakemake)
    except UserError as exc:
        logging.getLogger("llm_energy").error("%s", exc)
        sys.exit(1)
    except Exception:
        logging.getLogger("llm_energy").exception("rule %s failed", snakemake.rule)
        sys.exit(1)
