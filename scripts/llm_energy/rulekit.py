"""Glue for Snakemake rule scripts: logging to the rule's log and the terminal, one-line user errors."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from . import UserError


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_path`` (the rule's ``log:`` file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    for noisy in ("matplotlib", "PIL", "fontTools", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
