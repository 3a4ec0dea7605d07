"""benchmarks/reproducibility.py's comparisons: both runs' errors and verdicts side by side, flips told
apart from moves to or from inconclusive."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reproducibility", REPO / "benchmarks" / "reproducibility.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _findings(verdicts: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"finding": list(verdicts), "hardware": "cpu-x", "verdict": list(verdicts.values()),
                         "our_value": [1.0] * len(verdicts), "our_noise": [0.1] * len(verdicts)})


def test_verdicts_side_by_side_count_flips_apart_from_moves(tmp_path, capsys):
    first = _findings({"a": "reproduced", "b": "reproduced", "c": "inconclusive", "d": "not reproduced",
                       "e": "not testable here"})
    second = _findings({"a": "reproduced", "b": "not reproduced", "c": "reproduced", "d": "not reproduced",
                        "e": "not testable here"})
    t = bench.verdict_table(first, second).set_index("finding")
    assert t["move"].to_dict() == {"a": "same", "b": "flip", "c": "moved", "d": "same", "e": "same"}
    for i, f in enumerate((first, second)):
        (tmp_path / f"r{i}" / "paper").mkdir(parents=True)
        f.to_csv(tmp_path / f"r{i}" / "paper" / "findings.csv", index=False)
    bench.print_verdicts(tmp_path / "r0", tmp_path / "r1")
    out = capsys.readouterr().out
    assert "3 same, 1 flipped between reproduced and not reproduced, 1 moved" in out
    assert "no finding flips between reproduced and not reproduced: NOT met" in out


def test_errors_table_moves_are_run_two_minus_run_one():
    row = {"hardware": "cpu-x", "model": "m", "variant": "v", "decoding": "greedy", "workload": "w",
           "error_pct": 30.0, "model_error_pct": 4.0, "meter_drift_pct": 2.0, "model_flag": ""}
    t = bench.errors_table(pd.DataFrame([row]), pd.DataFrame([{**row, "model_error_pct": -7.5}]))
    assert t["model_move_pts"].tolist() == [-11.5]
    assert t[["model_error_pct_1", "model_error_pct_2"]].values.tolist() == [[4.0, -7.5]]


def test_errors_table_compares_the_drift_corrected_errors_too_and_tolerates_files_without_them():
    row = {"hardware": "cpu-x", "model": "m", "variant": "v", "decoding": "greedy", "workload": "w",
           "error_pct": 30.0, "model_error_pct": 0.7, "model_error_corrected_pct": 6.7, "meter_drift_pct": 6.0,
           "model_flag": ""}
    second = {**row, "model_error_pct": -12.8, "model_error_corrected_pct": -2.0, "meter_drift_pct": 12.4}
    t = bench.errors_table(pd.DataFrame([row]), pd.DataFrame([second]))
    assert t["model_move_pts"].round(1).tolist() == [-13.5]
    assert t["corrected_move_pts"].round(1).tolist() == [-8.7]
    assert bench.model_goals(t, "model_error_pct", "model_move_pts") == pytest.approx((12.8, 13.5))
    assert bench.model_goals(t, bench.CORRECTED, "corrected_move_pts") == pytest.approx((6.7, 8.7))
    old = {k: v for k, v in row.items() if k != "model_error_corrected_pct"}
    t = bench.errors_table(pd.DataFrame([old]), pd.DataFrame([old]))
    assert t["corrected_move_pts"].isna().all() and t["model_move_pts"].tolist() == [0.0]


def _checked(tmp_path, rows) -> Path:
    cell = Path("hw/m/v/greedy")
    path = tmp_path / "results" / "checked" / f"{cell}.parquet"
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(path)
    return cell


def test_the_change_between_runs_is_split_by_phase_so_a_change_of_shape_shows(tmp_path):
    import math

    # Three points whose decode share is 0.1, 0.5 and 0.9; run 2 costs exp(-0.1 - 0.5 * share) of run 1:
    # prefill-only work x0.905, decode-only work x0.549.
    shares = {8: 0.1, 32: 0.5, 128: 0.9}
    rows = [{"input_len": 64, "output_len": o, "batch_size": 4, "role": "grid", "status": "ok", "valid": True,
             "energy_j": 10.0, "decode_energy_j": 10.0 * s} for o, s in shares.items()]
    ratios = pd.DataFrame([{"input_len": 64, "output_len": o, "batch_size": 4, "role": "grid",
                            "ratio": math.exp(-0.1 - 0.5 * s)} for o, s in shares.items()])
    cell = _checked(tmp_path / "a", rows)
    pre, dec, corr = bench.change_by_phase(tmp_path / "a", cell, ratios)
    assert pre == pytest.approx(math.exp(-0.1)) and dec == pytest.approx(math.exp(-0.6))
    assert corr == pytest.approx(-1.0)
    # A uniform change of level: one factor at both ends.
    cell = _checked(tmp_path / "b", rows)
    pre, dec, _ = bench.change_by_phase(tmp_path / "b", cell, ratios.assign(ratio=0.7))
    assert pre == pytest.approx(0.7) and dec == pytest.approx(0.7)
    # Without decode energies (or fewer than three points) there is nothing to split.
    cell = _checked(tmp_path / "c", [{k: v for k, v in r.items() if k != "decode_energy_j"} for r in rows])
    assert all(math.isnan(x) for x in bench.change_by_phase(tmp_path / "c", cell, ratios))
    assert all(math.isnan(x) for x in bench.change_by_phase(tmp_path / "a", cell, ratios.head(2)))


def test_the_level_trend_inside_a_grid_job_is_the_last_quarter_over_the_first_whatever_the_points():
    # Three points of very different energies, each visited 4 times in serpentine order; the meter's level
    # falls linearly from 1.2 to 0.8 over the job's 12 windows, the reference kernel's readings stay at 1.
    points = [(64, 8), (256, 32), (1024, 128)]
    order = [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0]
    level = [1.2 - 0.4 * k / 11 for k in range(12)]
    rows = [{"input_len": points[p][0], "output_len": points[p][1], "batch_size": 4, "role": "grid",
             "status": "ok", "sweep_index": k, "energy_j": (10.0 ** p) * level[k], "reference_energy_j": 1.0}
            for k, p in enumerate(order)]
    m = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # the file's order is not the job's
    batches, reference = bench.level_trend(m)
    assert batches == pytest.approx((level[10] / level[1]), rel=0.03)  # medians of windows 9-11 over 0-2
    assert batches < 0.75 and reference == pytest.approx(1.0)
    assert all(x != x for x in bench.level_trend(m.drop(columns=["sweep_index"])))  # no order: not said
    steady = m.assign(energy_j=m["energy_j"] / m["sweep_index"].map(dict(enumerate(level))))
    assert bench.level_trend(steady)[0] == pytest.approx(1.0)
