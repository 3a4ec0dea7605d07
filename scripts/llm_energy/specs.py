"""Hardware specifications for the ideal (FLOPs x TDP / peak FLOPS) energy, each with its datasheet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SPECS_CSV = Path(__file__).parent / "data" / "hardware_specs.csv"


def load_specs(extra: dict | None = None) -> pd.DataFrame:
    """The shipped table, plus (or overridden by) ``extra``: {slug: {tdp_w, bf16_dense_tflops, ...}}."""
    specs = pd.read_csv(SPECS_CSV).set_index("slug")
    for slug, spec in (extra or {}).items():
        row = {"name": slug, "bf16_sparse_tflops": float("nan"), "memory_bandwidth_gbs": float("nan"),
               "source": "config.yaml hardware_specs", **spec}
        specs.loc[slug] = pd.Series(row)
    return specs


def spec_for(slug: str, specs: pd.DataFrame) -> dict | None:
    """The spec of a hardware slug, or None when unknown."""
    return specs.loc[slug].to_dict() if slug in specs.index else None
