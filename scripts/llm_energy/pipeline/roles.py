"""Why a point is measured: the ``role`` column of a measurement table.

``grid`` (a workload bin of the estimate) and ``sweep`` (Figure 2's controlled sweeps) may both hold
(``grid,sweep``); ``padded`` is a batch of different prompt lengths padded to the longest, which only
the energy model reads (``config.padded_points``): no figure, table or finding plots it.
"""

from __future__ import annotations

import pandas as pd

GRID = "grid"
SWEEP = "sweep"
PADDED = "padded"


def is_grid(role: pd.Series) -> pd.Series:
    """Which rows of a ``role`` column are grid points (``grid`` or ``grid,sweep``)."""
    return role.astype(str).str.split(",").apply(lambda r: GRID in r).astype(bool)


def is_padded(role: pd.Series) -> pd.Series:
    """Which rows of a ``role`` column are padded batches."""
    return role.astype(str) == PADDED


def without_padded(m: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's protocol (equal-length batches): every row but the padded batches."""
    return m[~is_padded(m["role"])].reset_index(drop=True) if "role" in m else m
