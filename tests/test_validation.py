"""Measurement validation: each rule marks the rows it should, with its reason; fatal mode stops."""

import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.estimates.estimate import workload_estimate
from llm_energy.measurement.validation import check_measurements, enforce, summary


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
    rows.append({**base, "input_len": 300, "repeat": 0, "energy_j": 0.8})  # below its prefill window's 1.0 J
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
    assert reason[(300, 0)].startswith("non-positive decode energy")
    assert not any("decode" in reason[(i, 0)] for i in (64, 128, 256, 1024, 2048))  # only where decode <= 0
    oom = checked[checked["status"] == "oom"]
    assert not oom["valid"].any() and (oom["invalid_reason"] == "").all()  # oom is a result, not invalid
    s = summary(checked)
    assert s["n_invalid_points"] == 6 and s["n_invalid_rows"] == 7


def test_invalid_rows_are_left_out_of_the_estimate_and_counted():
    checked = check_measurements(_rows(), min_window_s=0.5, max_cv=0.1)
    bins = pd.DataFrame({"input_bin": [64], "output_bin": [8], "n_requests": [4]})
    row, _ = workload_estimate(bins, {"n_requests": 4, "n_included": 4, "n_excluded": 0}, checked)
    assert row["energy_j"] == pytest.approx(4 / 2 * (10.0 + 10.2 + 9.9) / 3)
    assert row["n_invalid_points"] == 6
    bins_bad = pd.DataFrame({"input_bin": [128], "output_bin": [8], "n_requests": [4]})
    with pytest.raises(UserError, match=r"in=128, out=8.*invalid rows say"):
        workload_estimate(bins_bad, {"n_requests": 4, "n_included": 4, "n_excluded": 0}, checked)


def test_fatal_mode_stops_at_the_first_invalid_row():
    checked = check_measurements(_rows(), min_window_s=0.5, max_cv=0.1)
    enforce(checked, "cell.parquet", fatal=False)
    with pytest.raises(UserError, match=r"7 invalid measurement row\(s\).*in=128 out=8 batch=2 repeat=0"):
        enforce(checked, "cell.parquet", fatal=True)


def _cell(hardware, energy=10.0, duration=1.0, points=((64, 8),)):
    rows = [{"input_len": i, "output_len": o, "batch_size": 2, "duration_s": duration, "n_batches_in_window": 1,
             "prefill_energy_j": 1.0, "output_tokens": 2 * o, "status": "ok", "energy_source": "cpu-estimate",
             "role": "grid", "repeat": r, "energy_j": energy, "hardware": hardware, "model": "m",
             "variant": "vllm-eager", "decoding": "greedy"} for i, o in points for r in range(2)]
    return check_measurements(pd.DataFrame(rows), min_window_s=0.5, max_cv=0.1)


def _specs():
    from llm_energy.estimates.specs import load_specs

    return load_specs()


def _arch():
    from llm_energy.models.flops import Arch

    return {"m": Arch(hidden=64, layers=1, heads=1, kv_heads=1, head_dim=64, vocab=10, intermediate=64)}


BINS = pd.DataFrame({"input_bin": [64], "output_bin": [8], "n_requests": [4]})
SUMMARY = {"n_requests": 4, "n_included": 4, "n_excluded": 0}


def test_cell_whose_every_row_is_invalid_is_left_out_and_the_others_estimated(caplog):
    from llm_energy.estimates.estimate import estimate_cells

    cells = [("results/checked/here/m/vllm-eager/greedy.parquet", _cell("here")),
             ("results/checked/copied/m/vllm-eager/greedy.parquet", _cell("copied", duration=0.1))]  # all too short
    est, by_bin, left = estimate_cells([("w", BINS, SUMMARY)], cells, _arch(), _specs())
    assert est["hardware"].tolist() == ["here"] and est["energy_j"].iloc[0] == pytest.approx(4 / 2 * 10.0)
    assert set(by_bin["hardware"]) == {"here"}
    assert left[["workload", "hardware", "file"]].values.tolist() == [
        ["w", "copied", "results/checked/copied/m/vllm-eager/greedy.parquet"]]
    assert left["reason"].iloc[0] == "all 2 measured rows failed validation (first reason: window shorter than 0.5 s)"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["results/checked/copied/m/vllm-eager/greedy.parquet: left out of the estimates of w: all 2 "
                        "measured rows failed validation (first reason: window shorter than 0.5 s)"]


def test_cell_with_one_bin_invalid_or_measured_with_other_bins_is_left_out():
    from llm_energy.estimates.estimate import estimate_cells

    bins = pd.DataFrame({"input_bin": [64, 256], "output_bin": [8, 8], "n_requests": [4, 2]})
    good = _cell("here", points=((64, 8), (256, 8)))
    spread = _cell("spread", points=((64, 8), (256, 8)))
    spread.loc[(spread["input_len"] == 256) & (spread["repeat"] == 1), "energy_j"] = 30.0
    spread = check_measurements(spread, min_window_s=0.5, max_cv=0.1)
    old_bins = _cell("old", points=((64, 8), (128, 8)))
    cells = [("a", good), ("b", spread), ("c", old_bins)]
    est, _, left = estimate_cells([("w", bins, SUMMARY)], cells, _arch(), _specs())
    assert est["hardware"].tolist() == ["here"]
    reasons = dict(zip(left["hardware"], left["reason"]))
    assert reasons["spread"].startswith("no valid grid measurement for bin(s) (in=256, out=8) (")
    assert "invalid rows say: repeats spread more than CV 0.1" in reasons["spread"]
    assert reasons["old"] == ("no grid measurement at all for bin(s) (in=256, out=8): the cell was measured with "
                              "other bins; measure it again with the current bins")


def test_only_bins_no_cell_measured_or_no_cell_left_stop():
    from llm_energy.estimates.estimate import estimate_cells

    bins = pd.DataFrame({"input_bin": [64, 4096], "output_bin": [8, 8], "n_requests": [4, 1]})
    with pytest.raises(UserError, match=r"no cell has a grid measurement for bin\(s\) \(in=4096, out=8\) of "
                                        r"workload 'w'.*measure the cells again with the current bins"):
        estimate_cells([("w", bins, SUMMARY)], [("a", _cell("a")), ("b", _cell("b"))], _arch(), _specs())
    with pytest.raises(UserError, match=r"no cell could be estimated.*first: b: all 2 measured rows failed"):
        estimate_cells([("w", BINS, SUMMARY)], [("b", _cell("b", duration=0.1))], _arch(), _specs())


def test_estimate_rule_writes_the_other_cells_and_lists_the_left_out_one(tmp_path):
    """The rule script end to end (no Snakemake): a copied cell whose rows all fail validation does not
    stop the estimate; left_out.csv beside the estimates names it."""
    import importlib.util
    import json
    from pathlib import Path
    from types import SimpleNamespace

    class Names(SimpleNamespace):
        def get(self, key, default=None):
            return getattr(self, key, default)

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 1,
        "vocab_size": 10, "intermediate_size": 64}))
    files = []
    for hw, duration in (("here", 1.0), ("copied", 0.1)):
        files.append(tmp_path / f"{hw}.parquet")
        _cell(hw, duration=duration).to_parquet(files[-1])
    BINS.to_parquet(tmp_path / "bins.parquet")
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    out = tmp_path / "estimates"
    sm = Names(input=Names(measurements=[str(f) for f in files], model_dirs=[str(tmp_path / "m")],
                           bins=[str(tmp_path / "bins.parquet")], summaries=[str(tmp_path / "summary.json")]),
               params=Names(models=["m"], workloads=["w"], hardware_specs={}, comparisons=[], hardware="cpu-test",
                            cpu_watts_per_core=4.0,
                            carbon={"grid_intensity_g_per_kwh": 480, "pue": 1.0, "price_per_kwh": 0.1}),
               output=Names(estimates=str(out / "estimates.parquet"), by_bin=str(out / "by_bin.parquet"),
                            savings=str(out / "savings.parquet")))
    script = Path(__file__).parents[1] / "scripts/rules/estimate.py"
    spec = importlib.util.spec_from_file_location("estimate_rule", script)
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    rule.main(sm)
    assert pd.read_parquet(out / "estimates.parquet")["hardware"].tolist() == ["here"]
    left = pd.read_csv(out / "left_out.csv")
    assert left["hardware"].tolist() == ["copied"] and "failed validation" in left["reason"].iloc[0]
    (tmp_path / "m" / "config.json").write_text('{"model_type": "llama",\n "hidden_size": 6')
    with pytest.raises(UserError, match=r"m/config.json is not valid JSON \(line 2.*delete the folder to rebuild"):
        rule.main(sm)
