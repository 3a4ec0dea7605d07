"""benchmarks/model_sensitivity.py's arithmetic: the within-job spread a row's error gets from its
windows' elasticities and noise, and which windows the replay job measured again as control points."""

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
spec = importlib.util.spec_from_file_location("model_sensitivity", REPO / "benchmarks" / "model_sensitivity.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _table() -> pd.DataFrame:
    return pd.DataFrame([
        {"window": "full", "point": (1024, 512, 4, "grid"), "noise": 0.04, "repeats": 2, "w": -0.7},
        {"window": "full", "point": (1024, 512, 4, "padded"), "noise": 0.08, "repeats": 2, "w": 0.6},
        {"window": "full", "point": (64, 8, 1, "sweep"), "noise": 0.04, "repeats": 2, "w": 0.1},
        {"window": "prefill", "point": (1024, 4, False), "noise": 0.02, "repeats": 2, "w": -0.2},
        {"window": "prefill", "point": (1024, 4, True), "noise": 0.02, "repeats": 2, "w": 0.3},
    ])


def _runs() -> pd.DataFrame:
    return pd.DataFrame([{"workload": "w", "control_input_len": [1024], "control_output_len": [512],
                          "control_batch_size": 4}])


def test_control_windows_are_the_unpadded_full_and_prefill_windows_of_the_control_shapes():
    assert bench.control_windows(_table(), _runs()).tolist() == [True, False, False, True, False]


def test_spread_pools_the_noise_per_window_kind_and_divides_by_the_repeats():
    s = bench.spread(_table(), "w", _runs(), control_repeats=4, replay_se_pct=3.0)
    full, prefill = 0.04, 0.02  # medians of each kind's noise (the padded point's 0.08 is pooled away)
    grid = sum(e ** 2 * n ** 2 / 2 for e, n in [(-0.7, full), (0.6, full), (0.1, full), (-0.2, prefill),
                                                (0.3, prefill)])
    assert s["grid_sd_pct"] == pytest.approx(100 * math.sqrt(grid))
    control = ((-0.7) ** 2 * full ** 2 + (-0.2) ** 2 * prefill ** 2) / 4
    assert s["replay_sd_pct"] == pytest.approx(math.hypot(100 * math.sqrt(control), 3.0))
    assert s["top"].iloc[0]["point"] == (1024, 512, 4, "grid")
