"""Measurement validation: each rule marks the rows it should, with its reason; fatal mode stops."""

import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.estimate import workload_estimate
from llm_energy.validation import check_measurements, enforce, summary


def _rows():
    base = {"input_len": 64, "output_len": 8, "batch_size": 2, "duration_s": 1.0, "n_batches_in_window": 1,
            "prefill_energy_j": 1.0, "output_tokens": 16, "status": "ok", "energy_source": "cpu-estimate",
            "role": "grid", "n_power_samples": 0}
    rows = [{**base, "repeat": r, "energy_j": e} for r, e in enumerate([10.0, 10.2, 9.9])]
    rows.append({**base, "input_len": 128, "repeat": 0, "energy_j": 5.0})
    rows.append({**base, "input_len": 128, "repeat": 1, "energy_j": 15.0})  # CV 0.71 over this point
    rows.append({**base, "input_len": 256, "repeat": 0, "energy_j": 3.0, "duration_s": 0.1})  # short window
    rows.append({**base, "input_len": 512, "repeat": 0, "energy_j": -1.0})  # counter went backwards
    rows.append({**base, "input_len": 1024, "repeat": 0, "energy_j": 2.0, "output_tokens": 15})
    rows.append({**base, "input_len": 2048, "repeat": 0, "energy_j": 2.0, "energy_source": "nvml",
                 "n_power_samples": 1})  # a 1 s GPU window needs >= 5 samples at 10 Hz
    rows.append({**base, "input_len": 4096, "repeat": 0, "status": "oom", "energy_j": float("nan")})
    return pd.DataFrame(rows)


def test_each_rule_marks_its_rows():
    checked = check_measurements(_rows(), min_window_s=0.5, max_cv=0.1)
    reason = checked.set_index(["input_len", "repeat"])["invalid_reason"]
    assert checked[checked["input_len"] == 64]["valid"].all()
    assert "spread more than CV 0.1" in reason[(128, 0)] and "spread" in reason[(128, 1)]
    assert "window shorter than 0.5 s" in reason[(256, 0)]
    assert "non-positive energy" in reason[(512, 0)]
    assert "output tokens differ" in reason[(1024, 0)]
    assert "power timeline does not cover the window" in reason[(2048, 0)]
    oom = checked[checked["status"] == "oom"]
    assert not oom["valid"].any() and (oom["invalid_reason"] == "").all()  # oom is a result, not invalid
    s = summary(checked)
    assert s["n_invalid_points"] == 5 and s["n_invalid_rows"] == 6


def test_invalid_rows_are_left_out_of_the_estimate_and_counted():
    checked = check_measurements(_rows(), min_window_s=0.5, max_cv=0.1)
    bins = pd.DataFrame({"input_bin": [64], "output_bin": [8], "n_requests": [4]})
    row, _ = workload_estimate(bins, {"n_requests": 4, "n_included": 4, "n_excluded": 0}, checked)
    assert row["energy_j"] == pytest.approx(4 / 2 * (10.0 + 10.2 + 9.9) / 3)
    assert row["n_invalid_points"] == 5
    bins_bad = pd.DataFrame({"input_bin": [128], "output_bin": [8], "n_requests": [4]})
    with pytest.raises(UserError, match=r"in=128, out=8.*invalid rows say"):
        workload_estimate(bins_bad, {"n_requests": 4, "n_included": 4, "n_excluded": 0}, checked)


def test_fatal_mode_stops_at_the_first_invalid_row():
    checked = check_measurements(_rows(), min_window_s=0.5, max_cv=0.1)
    enforce(checked, "cell.parquet", fatal=False)
    with pytest.raises(UserError, match=r"6 invalid measurement row\(s\).*in=128 out=8 batch=2 repeat=0"):
        enforce(checked, "cell.parquet", fatal=True)
