"""Carbon and cost of the workload estimates (config ``carbon:``).

    facility energy (kWh) = estimated energy (J) x PUE / 3.6e6
    kgCO2e                = facility kWh x grid intensity (gCO2e/kWh) / 1000
    cost                  = facility kWh x price per kWh

The grid intensity is one number from the config, or, with ``intensity_file`` (an hourly CSV with
columns ``timestamp``, ``g_per_kwh``), the intensity of the hours the cell was measured in: each
measured row's ``start_time`` looks up its hour (UTC), and the cell's intensity is the mean over its
rows weighted by their energy. Every number also comes per million requests (the workload's
included requests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy import UserError
from llm_energy.pipeline.cells import CELL_KEYS

J_PER_KWH = 3.6e6
PER_MILLION = ("facility_energy_kwh", "co2e_kg", "cost")
COLUMNS = ["pue", "facility_energy_kwh", "grid_intensity_g_per_kwh", "grid_intensity_source", "co2e_kg", "cost",
           "currency", *(f"{c}_per_million_requests" for c in PER_MILLION)]


@dataclass(frozen=True)
class CarbonSettings:
    """The config's ``carbon:`` section (defaults and sources in workflow/schemas/config.schema.yaml)."""

    grid_intensity_g_per_kwh: float
    pue: float
    price_per_kwh: float
    currency: str = "USD"
    intensity_file: str | None = None

    @classmethod
    def from_config(cls, section: Mapping) -> CarbonSettings:
        """Settings from the validated config section (unknown keys ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in section.items() if k in names})


def facility_kwh(energy_j, pue: float):
    """Facility energy in kWh: measured (or estimated) energy x PUE."""
    return np.asarray(energy_j, dtype=float) * pue / J_PER_KWH


def co2e_kg(kwh, g_per_kwh):
    """kgCO2e of ``kwh`` at ``g_per_kwh`` grams per kWh."""
    return np.asarray(kwh, dtype=float) * np.asarray(g_per_kwh, dtype=float) / 1000.0


def read_intensity(path: str | Path) -> pd.Series:
    """An hourly intensity file: gCO2e/kWh indexed by the hour (UTC); naive timestamps are UTC.

    Raises :class:`UserError` naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise UserError(f"carbon.intensity_file {path}: cannot be read as CSV ({error})") from None
    missing = {"timestamp", "g_per_kwh"} - set(table.columns)
    if missing or table.empty:
        raise UserError(f"carbon.intensity_file {path}: needs rows with columns timestamp, g_per_kwh "
                        f"({'missing ' + ', '.join(sorted(missing)) if missing else 'no rows'})")
    times = pd.to_datetime(table["timestamp"], errors="coerce", utc=True, format="mixed")
    values = pd.to_numeric(table["g_per_kwh"], errors="coerce")
    for bad, what in ((times.isna(), "timestamp is not a date and time"),
                      (values.isna(), "g_per_kwh is not a number"), (values < 0, "g_per_kwh is negative")):
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"carbon.intensity_file {path}: line {row + 2}: {what} (timestamp "
                            f"{table['timestamp'].iloc[row]}, g_per_kwh {table['g_per_kwh'].iloc[row]})")
    hours = times.dt.floor("h")
    if hours.duplicated().any():
        raise UserError(f"carbon.intensity_file {path}: hour {hours[hours.duplicated()].iloc[0]} appears twice; "
                        "give one row per hour")
    return pd.Series(values.to_numpy(dtype=float), index=pd.DatetimeIndex(hours), name="g_per_kwh").sort_index()


def intensity_at(intensity: pd.Series, times, path: str | Path) -> np.ndarray:
    """The intensity of the hour of each time (ISO strings or timestamps; naive ones are UTC).

    Raises :class:`UserError` naming the file, the dates it covers and the first dates it misses.
    """
    hours = pd.DatetimeIndex(pd.to_datetime(pd.Series(times), utc=True, format="mixed")).floor("h")
    values = intensity.reindex(hours).to_numpy(dtype=float)
    if np.isnan(values).any():
        missed = sorted({str(h.date()) for h in hours[np.isnan(values)]})
        covers = f"{intensity.index.min()} to {intensity.index.max()}" if len(intensity) else "nothing"
        raise UserError(f"carbon.intensity_file {path}: covers {covers}, not every measured hour of "
                        f"{', '.join(missed[:5])}{' ...' if len(missed) > 5 else ''}: give the hours the cells "
                        "were measured in (UTC), or leave intensity_file empty to use grid_intensity_g_per_kwh")
    return values


def cell_intensity(measurements: pd.DataFrame, intensity: pd.Series, path: str | Path) -> float:
    """The energy-weighted mean intensity over a cell's measured rows (status ok, valid where said)."""
    m = measurements
    if "status" in m:
        m = m[m["status"] == "ok"]
    if "valid" in m:
        m = m[m["valid"].astype(bool)]
    m = m.dropna(subset=[c for c in ("start_time", "energy_j") if c in m])
    if "start_time" not in m or m.empty:
        cell = "/".join(str(measurements[k].iloc[0]) for k in CELL_KEYS)
        raise UserError(f"carbon.intensity_file {path}: the cell {cell} has no measured row with a start_time to "
                        "look its intensity up at")
    weights = m["energy_j"].to_numpy(dtype=float) if "energy_j" in m else np.ones(len(m))
    values = intensity_at(intensity, m["start_time"], path)
    return float(np.average(values, weights=weights if weights.sum() > 0 else None))


def cell_intensities(cells: list[tuple[str, pd.DataFrame]], settings: CarbonSettings) -> pd.DataFrame:
    """Per cell (``CELL_KEYS``), the grid intensity and where it comes from."""
    rows = []
    table = read_intensity(settings.intensity_file) if settings.intensity_file else None
    for _, m in cells:
        labels = {k: m[k].iloc[0] for k in CELL_KEYS}
        if table is None:
            value, source = settings.grid_intensity_g_per_kwh, "config grid_intensity_g_per_kwh"
        else:
            value = cell_intensity(m, table, settings.intensity_file)
            source = f"{Path(settings.intensity_file).name} at the measured hours (energy-weighted)"
        rows.append({**labels, "grid_intensity_g_per_kwh": value, "grid_intensity_source": source})
    return pd.DataFrame(rows, columns=[*CELL_KEYS, "grid_intensity_g_per_kwh", "grid_intensity_source"])


def add_carbon_columns(estimates: pd.DataFrame, intensities: pd.DataFrame, settings: CarbonSettings) -> pd.DataFrame:
    """``estimates`` with ``COLUMNS``: facility kWh, kgCO2e, cost, and each per million included requests.

    ``intensities``: :func:`cell_intensities`; a cell without a row gets the config's intensity.
    """
    est = estimates.drop(columns=[c for c in COLUMNS if c in estimates])
    if len(intensities):
        est = est.merge(intensities.drop_duplicates(CELL_KEYS), on=CELL_KEYS, how="left")
    else:
        est = est.assign(grid_intensity_g_per_kwh=math.nan, grid_intensity_source="")
    fallback = est["grid_intensity_g_per_kwh"].isna()
    est.loc[fallback, "grid_intensity_g_per_kwh"] = settings.grid_intensity_g_per_kwh
    est.loc[fallback, "grid_intensity_source"] = "config grid_intensity_g_per_kwh"
    est["pue"] = settings.pue
    est["facility_energy_kwh"] = facility_kwh(est["energy_j"], settings.pue)
    est["co2e_kg"] = co2e_kg(est["facility_energy_kwh"], est["grid_intensity_g_per_kwh"])
    est["cost"] = est["facility_energy_kwh"] * settings.price_per_kwh
    est["currency"] = settings.currency
    requests = est["n_included"].astype(float).where(est["n_included"] > 0)
    for col in PER_MILLION:
        est[f"{col}_per_million_requests"] = est[col] / requests * 1e6
    return est
