"""Measure and model the energy cost of LLM inference (Fernandez et al., ACL 2025, reproduced).

Stages talk through files (see README, "Data contracts"); this package holds all the logic, and
the Snakemake rule scripts under ``scripts/rules/`` only move paths in and out of it.
"""

__version__ = "0.1.0"


class UserError(Exception):
    """A mistake the user can fix (config, input file, wrong machine): shown as one line, no traceback."""
