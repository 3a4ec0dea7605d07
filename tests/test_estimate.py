import math

import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.estimates.estimate import binned_estimate, workload_estimate


def _row(i, o, b, r, e, role="grid", status="ok"):
    return {"input_len": i, "output_len": o, "batch_size": b, "repeat": r, "energy_j": e, "duration_s": 1.0,
            "energy_source": "cpu-estimate", "role": role, "status": status}


def _measurements(energies: dict, batch_size=4, repeats=(0, 1)):
    rows = [_row(i, o, batch_size, r, e + (0.5 if r else -0.5)) for (i, o), e in energies.items() for r in repeats]
    # A sweep point of the same shape at another batch size, and a point that did not fit, are not used.
    rows.append(_row(64, 8, 1, 0, 1e6, role="sweep"))
    rows.append(_row(256, 32, 16, 0, float("nan"), status="oom"))
    return pd.DataFrame(rows)


def test_estimate_is_sum_of_requests_over_batch_times_batch_energy():
    bins = pd.DataFrame({"input_bin": [64, 256], "output_bin": [8, 32], "n_requests": [10, 3]})
    m = _measurements({(64, 8): 2.0, (256, 32): 7.0, (256, 8): 99.0})
    summary = {"n_requests": 15, "n_included": 13, "n_excluded": 2}
    row, per_bin = workload_estimate(bins, summary, m)
    assert row["energy_j"] == pytest.approx(10 / 4 * 2.0 + 3 / 4 * 7.0)
    assert row["energy_whole_batches_j"] == pytest.approx(math.ceil(10 / 4) * 2.0 + math.ceil(3 / 4) * 7.0)
    assert row["energy_per_request_j"] == pytest.approx(row["energy_j"] / 13)
    assert row["n_excluded"] == 2 and row["n_bins"] == 2
    assert per_bin["energy_batch_std_j"].gt(0).all()


def test_missing_point_names_the_bins():
    bins = pd.DataFrame({"input_bin": [64, 1024], "output_bin": [8, 8], "n_requests": [1, 1]})
    with pytest.raises(UserError, match=r"in=1024, out=8"):
        binned_estimate(bins, _measurements({(64, 8): 1.0}))


def test_each_bin_uses_its_own_largest_batch():
    # Probing found B = 8 for the short bin and B = 2 for the long one.
    m = pd.DataFrame([_row(64, 8, 8, 0, 4.0), _row(1024, 8, 2, 0, 10.0), _row(1024, 8, 4, 0, float("nan"),
                                                                               status="oom")])
    bins = pd.DataFrame({"input_bin": [64, 1024], "output_bin": [8, 8], "n_requests": [16, 6]})
    per_bin = binned_estimate(bins, m)
    assert per_bin["batch_size"].tolist() == [8, 2]
    assert per_bin["energy_j"].sum() == pytest.approx(16 / 8 * 4.0 + 6 / 2 * 10.0)


def test_ideal_energy_is_tdp_over_peak_times_flops_both_peaks():
    from llm_energy.estimates.estimate import add_ideal_columns, ideal_energy
    from llm_energy.estimates.specs import load_specs, spec_for
    from llm_energy.models.flops import Arch, generation_flops

    arch = Arch(hidden=4096, layers=32, heads=32, kv_heads=8, head_dim=128, vocab=128256, intermediate=14336)
    bins = pd.DataFrame({"input_bin": [256, 1024], "output_bin": [8, 64], "n_requests": [100, 7]})
    spec = spec_for("rtx-a6000", load_specs())
    assert spec["bf16_sparse_tflops"] == pytest.approx(309.7)  # the paper's A6000 figure is the sparse one
    out = ideal_energy(bins, arch, spec)
    flops = 100 * generation_flops(arch, 256, 8) + 7 * generation_flops(arch, 1024, 64)
    assert out["flops"] == flops
    assert out["ideal_energy_j"] == pytest.approx(300 / 154.8e12 * flops)
    assert out["ideal_sparse_energy_j"] == pytest.approx(300 / 309.7e12 * flops)
    row = add_ideal_columns({"energy_j": 3 * out["ideal_energy_j"], **out})
    assert row["pct_above_ideal"] == pytest.approx(200.0)
    assert ideal_energy(bins, arch, None)["ideal_energy_j"] != ideal_energy(bins, arch, None)["ideal_energy_j"]  # NaN


def test_config_specs_extend_the_datasheet_table():
    from llm_energy.estimates.specs import load_specs, spec_for

    specs = load_specs({"cpu-x": {"tdp_w": 8, "bf16_dense_tflops": 0.5}})
    assert spec_for("cpu-x", specs)["tdp_w"] == 8 and spec_for("h100-80gb-hbm3", specs)["tdp_w"] == 700
    assert spec_for("unknown-gpu", specs) is None


def test_savings_of_optimized_over_baseline():
    from llm_energy.estimates.estimate import savings

    est = pd.DataFrame([
        {"workload": "w", "hardware": "h", "model": "m", "decoding": "greedy", "variant": "transformers-eager",
         "energy_j": 200.0},
        {"workload": "w", "hardware": "h", "model": "m", "decoding": "greedy", "variant": "vllm-eager",
         "energy_j": 54.0},
    ])
    s = savings(est, [{"baseline": "transformers-eager", "optimized": "vllm-eager"},
                      {"baseline": "transformers-eager", "optimized": "not-measured"}])
    assert len(s) == 1 and s["saving_pct"].iloc[0] == pytest.approx(73.0)


def test_without_profiles_the_estimates_are_the_binned_ones_with_the_method_columns():
    from llm_energy.estimates.estimate import estimate_cells
    from llm_energy.estimates.specs import load_specs
    from llm_energy.models.flops import Arch

    bins = pd.DataFrame({"input_bin": [64, 256], "output_bin": [8, 32], "n_requests": [10, 3]})
    m = _measurements({(64, 8): 2.0, (256, 32): 7.0}).assign(hardware="h", model="m", variant="vllm-eager",
                                                              decoding="greedy")
    arch = Arch(hidden=64, layers=1, heads=1, kv_heads=1, head_dim=64, vocab=100, intermediate=128)
    est, _, _ = estimate_cells([("w", bins, {"n_requests": 13, "n_included": 13, "n_excluded": 0})], [("p", m)],
                               {"m": arch}, load_specs({}))
    assert est["method"].tolist() == ["binned"] and est["energy_j"].iloc[0] == pytest.approx(10 / 4 * 2 + 3 / 4 * 7)
    assert est["n_extrapolated"].tolist() == [0] and est["systematic_error_pct"].isna().all()
    assert "no replay" in est["systematic_error_note"].iloc[0]


def test_savings_compare_binned_estimates_only():
    from llm_energy.estimates.estimate import savings

    rows = [{"workload": "w", "hardware": "h", "model": "m", "decoding": "greedy", "variant": v, "method": k,
             "energy_j": e} for v, k, e in [("transformers-eager", "binned", 200.0), ("vllm-eager", "binned", 54.0),
                                            ("transformers-eager", "model", 100.0), ("vllm-eager", "model", 90.0)]]
    s = savings(pd.DataFrame(rows), [{"baseline": "transformers-eager", "optimized": "vllm-eager"}])
    assert len(s) == 1 and s["saving_pct"].iloc[0] == pytest.approx(73.0)
    s = savings(pd.DataFrame(rows), [{"baseline": "transformers-eager", "optimized": "vllm-eager"}], method="model")
    assert s["saving_pct"].iloc[0] == pytest.approx(10.0)
