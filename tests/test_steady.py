"""The grid job at a steady meter level: the reference kernel's readings take a stretch of the job that
reads high out of the points measured then, and the validation reports the model fitted to them beside
the raw one."""

import math

import numpy as np
import pandas as pd
import pytest
from test_energy_model import EDGES_IN, EDGES_OUT, TRUE, _replays, _sample, synthetic

from llm_energy.estimates.drift import STEADY_WINDOW, steady_grid
from llm_energy.estimates.replay import validate
from llm_energy.modelling.serving import serve


def _bumped(level=1.15):
    """The synthetic grid job in serpentine rounds, its meter reading ``level`` x over the middle third
    of the job, and the reference kernel read before every window reading it too."""
    m = synthetic()
    n = len(m) // 2
    m["sweep_index"] = [k if r == 0 else 2 * n - 1 - k for k, r in zip(m.index // 2, m["repeat"])]
    bump = np.where((m["sweep_index"] >= 2 * n / 3) & (m["sweep_index"] < 4 * n / 3), level, 1.0)
    true = m[["energy_j", "prefill_energy_j"]].copy()
    m["reference_energy_j"] = 0.5 * bump
    m["energy_j"] *= bump
    m["prefill_energy_j"] *= bump
    return m, true, bump


def test_steady_grid_takes_a_stretch_of_the_job_that_reads_high_out_of_its_rows():
    m, true, bump = _bumped()
    assert (bump > 1).sum() > STEADY_WINDOW
    steady, note = steady_grid(m)
    assert note == ""
    assert np.allclose(steady["energy_j"], true["energy_j"]) and np.allclose(steady["prefill_energy_j"],
                                                                              true["prefill_energy_j"])
    assert not np.allclose(m["energy_j"], true["energy_j"])  # the raw rows stay what was metered
    # One reading's noise does not move a window: a single high reading among steady ones changes nothing.
    one = m.assign(reference_energy_j=0.5, energy_j=true["energy_j"])
    one.loc[one["sweep_index"] == 3, "reference_energy_j"] = 0.6
    assert np.allclose(steady_grid(one)[0]["energy_j"], true["energy_j"])
    # No readings (a GPU meter, an old file): nothing made up, the reason said.
    none, why = steady_grid(m.drop(columns="reference_energy_j"))
    assert none is None and "no reference readings" in why


def test_the_steady_model_is_right_where_a_bump_in_the_grid_job_bends_the_raw_one():
    m, _, _ = _bumped(level=1.3)
    sample = _sample()
    served = serve(TRUE, sample["input_tokens"], sample["output_tokens"], 8, "vllm")
    shapes = [(256, 32), (1024, 128)]  # the replay job reads the grid job's steady level at its control points
    controls = {"control_input_len": [i for i, _ in shapes], "control_output_len": [o for _, o in shapes],
                "control_batch_size": 8, "control_energy_j": [float(TRUE.batch_j(i, o, 8)) for i, o in shapes],
                "control_prefill_energy_j": [float(TRUE.prefill_j(i, 8)) for i, _ in shapes]}
    replays = _replays(sample, [served.energy_j] * 2).assign(**{k: [v] * 2 for k, v in controls.items()})
    raw = m.copy()
    v = validate(replays, m, EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    pd.testing.assert_frame_equal(m, raw)  # the validation never rewrites the measurements
    assert v["steady_note"] == "" and v["meter_drift_steady_pct"] == pytest.approx(0.0, abs=1e-6)
    assert v["model_error_steady_pct"] == pytest.approx(0.0, abs=0.5)
    # The raw model, fitted to the bent grid, and its control-point corrections are off by more.
    assert abs(v["model_error_pct"]) > 3 and abs(v["model_error_phase_pct"]) > 3
    # Without readings in the grid job: NaN and the reason, never the raw number in its place.
    old = validate(replays, m.drop(columns="reference_energy_j"), EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    assert math.isnan(old["model_error_steady_pct"]) and "no reference readings" in old["steady_note"]
