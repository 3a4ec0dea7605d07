"""The rows of a cell stopped midway (a device lost): kept beside the cell's output under a name no
stage reads, so that nothing partial is ever counted as a result and nothing measured is thrown away."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llm_energy.measurement.meters import DeviceLost
from llm_energy.pipeline.io import write_parquet


def partial_path(out: str | Path) -> Path:
    """Where the rows of a cell stopped midway are kept: ``<stem>.partial.parquet`` beside ``out``.

    No stage reads it (each reads ``<decoding>.parquet`` by its exact name); a complete measurement
    of the cell later replaces ``out``, never this file.
    """
    out = Path(out)
    return out.with_name(out.stem + ".partial.parquet")


def keep_partial(rows: list[dict], provenance: dict, partial_out: str | Path | None, lost: Exception) -> None:
    """Write the rows measured before a device was lost (with the reason) and stop with one line."""
    kept = "no point had been measured"
    if rows and partial_out is not None:
        df = pd.DataFrame(rows)
        for key, value in provenance.items():
            df[key] = value
        df["partial_reason"] = str(lost)
        write_parquet(df, partial_out)
        kept = (f"the {len(rows)} rows measured before are kept in {partial_out} (a partial table: no stage "
                "reads it)")
    elif rows:
        kept = f"the {len(rows)} rows measured before are lost (no output file was given)"
    raise DeviceLost(f"{lost}; {kept}") from None
