"""Carbon and cost of the workload estimates: the arithmetic on hand-computed values, the hourly
intensity file (lookup by hour, malformed file, dates not covered) and the config's refusals."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from llm_energy import UserError
from llm_energy.estimates import carbon as C
from llm_energy.pipeline import config as cfgmod

REPO = Path(__file__).resolve().parents[1]
CELL = {"hardware": "hw", "model": "m", "variant": "vllm-eager", "decoding": "greedy"}


def estimates(energy_j=(7.2e6, 3.6e6), n_included=(2_000_000, 0)) -> pd.DataFrame:
    return pd.DataFrame([{"workload": f"w{i}", **CELL, "method": "binned", "energy_j": e, "n_included": n}
                         for i, (e, n) in enumerate(zip(energy_j, n_included))])


def measurements(times, energies) -> pd.DataFrame:
    return pd.DataFrame([{**CELL, "status": "ok", "valid": True, "start_time": t, "energy_j": e}
                         for t, e in zip(times, energies)])


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "intensity.csv"
    path.write_text(text)
    return path


def test_kwh_co2e_cost_and_per_million_requests_by_hand():
    s = C.CarbonSettings(grid_intensity_g_per_kwh=400.0, pue=1.5, price_per_kwh=0.12, currency="EUR")
    out = C.add_carbon_columns(estimates(), pd.DataFrame(), s).set_index("workload")
    # 7.2 MJ = 2 kWh measured; x PUE 1.5 = 3 kWh; x 400 g = 1.2 kg; x 0.12 = 0.36 EUR.
    assert math.isclose(out.loc["w0", "facility_energy_kwh"], 3.0)
    assert math.isclose(out.loc["w0", "co2e_kg"], 1.2)
    assert math.isclose(out.loc["w0", "cost"], 0.36) and out.loc["w0", "currency"] == "EUR"
    # 2 million requests: half of each per million.
    assert math.isclose(out.loc["w0", "co2e_kg_per_million_requests"], 0.6)
    assert math.isclose(out.loc["w0", "cost_per_million_requests"], 0.18)
    assert math.isclose(out.loc["w0", "facility_energy_kwh_per_million_requests"], 1.5)
    # No included request: per million is NaN, never a division by zero.
    assert math.isclose(out.loc["w1", "facility_energy_kwh"], 1.5)
    assert np.isnan(out.loc["w1", "cost_per_million_requests"])
    assert (out["grid_intensity_source"] == "config grid_intensity_g_per_kwh").all() and (out["pue"] == 1.5).all()


def test_intensity_file_is_looked_up_by_the_hour_of_each_start_time(tmp_path):
    path = write(tmp_path, "timestamp,g_per_kwh\n2026-01-05T10:00:00Z,100\n2026-01-05T11:00:00Z,300\n"
                           "2026-01-05 12:00,500\n")
    table = C.read_intensity(path)
    got = C.intensity_at(table, ["2026-01-05T10:59:59+00:00", "2026-01-05T11:00:00+00:00",
                                 "2026-01-05T13:30:00+01:00"], path)  # 13:30 at +01:00 is 12:30 UTC
    assert list(got) == [100.0, 300.0, 500.0]
    # The cell's intensity: rows weighted by their energy, 1 J at 100 g and 3 J at 300 g -> 250 g.
    m = measurements(["2026-01-05T10:10:00+00:00", "2026-01-05T11:10:00+00:00"], [1.0, 3.0])
    m = pd.concat([m, m.iloc[:1].assign(status="oom", start_time="1999-01-01T00:00:00+00:00")])
    assert math.isclose(C.cell_intensity(m, table, path), 250.0)
    s = C.CarbonSettings(480.0, 1.0, 0.1, intensity_file=str(path))
    per_cell = C.cell_intensities([("x.parquet", m)], s)
    out = C.add_carbon_columns(estimates(), per_cell, s)
    assert (out["grid_intensity_g_per_kwh"] == 250.0).all()
    assert math.isclose(out["co2e_kg"].iloc[0], 2.0 * 250 / 1000)
    assert out["grid_intensity_source"].iloc[0].startswith("intensity.csv at the measured hours")


@pytest.mark.parametrize("text, message", [
    ("time,value\n2026-01-05T10:00:00Z,100\n", "needs rows with columns timestamp, g_per_kwh (missing"),
    ("timestamp,g_per_kwh\n", "no rows"),
    ("timestamp,g_per_kwh\nyesterday,100\n", "line 2: timestamp is not a date and time"),
    ("timestamp,g_per_kwh\n2026-01-05T10:00:00Z,100\n2026-01-05T11:00:00Z,lots\n", "line 3: g_per_kwh is not a number"),
    ("timestamp,g_per_kwh\n2026-01-05T10:00:00Z,-5\n", "line 2: g_per_kwh is negative (timestamp "
                                                       "2026-01-05T10:00:00Z, g_per_kwh -5)"),
    ("timestamp,g_per_kwh\n2026-01-05T10:00:00Z,1\n2026-01-05T10:30:00Z,2\n", "appears twice"),
])
def test_a_malformed_intensity_file_is_one_line_naming_it(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as error:
        C.read_intensity(path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_an_absent_intensity_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="intensity_file .*nope.csv: cannot be read"):
        C.read_intensity(tmp_path / "nope.csv")


def test_dates_the_file_does_not_cover_are_named(tmp_path):
    path = write(tmp_path, "timestamp,g_per_kwh\n2026-01-05T10:00:00Z,100\n")
    m = measurements(["2026-01-05T10:10:00+00:00", "2026-02-07T09:00:00+00:00"], [1.0, 1.0])
    s = C.CarbonSettings(480.0, 1.0, 0.1, intensity_file=str(path))
    with pytest.raises(UserError) as error:
        C.cell_intensities([("x.parquet", m)], s)
    text = str(error.value)
    assert str(path) in text and "2026-02-07" in text and "2026-01-05 10:00:00+00:00" in text
    assert "2026-01-05," not in text  # the covered date is not reported as missing


def test_a_cell_without_start_times_says_so(tmp_path):
    path = write(tmp_path, "timestamp,g_per_kwh\n2026-01-05T10:00:00Z,100\n")
    m = measurements([None], [1.0])
    with pytest.raises(UserError, match="hw/m/vllm-eager/greedy has no measured row with a start_time"):
        C.cell_intensity(m, C.read_intensity(path), path)


@pytest.fixture()
def default():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_config_defaults_fill_and_have_sources(default):
    del default["carbon"]
    cfg = cfgmod.validate(default)
    s = C.CarbonSettings.from_config(cfg["carbon"])
    assert s.grid_intensity_g_per_kwh > 0 and s.pue >= 1.0 and s.price_per_kwh > 0 and s.intensity_file is None
    schema = cfgmod.load_schema()["properties"]["carbon"]["properties"]
    for key in ("grid_intensity_g_per_kwh", "pue", "price_per_kwh"):
        assert "source" in schema[key]["description"].lower(), key


@pytest.mark.parametrize("key", ["grid_intensity_g_per_kwh", "pue", "price_per_kwh"])
def test_negative_values_are_refused_in_one_line(default, key):
    bad = copy.deepcopy(default)
    bad["carbon"][key] = -1
    with pytest.raises(UserError) as error:
        cfgmod.validate(bad)
    assert f"carbon.{key}: -1 is less than the minimum" in str(error.value)


def test_check_config_prints_the_refusal_without_a_traceback(default, tmp_path):
    default["carbon"]["pue"] = -0.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(default))
    run = subprocess.run([sys.executable, "-m", "llm_energy", "check-config", str(path)], capture_output=True,
                         text=True, cwd=REPO)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "carbon.pue: -0.5 is less than the minimum" in out
    assert "Traceback" not in out
