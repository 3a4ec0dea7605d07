import math

import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.estimate import binned_estimate, workload_estimate


def _measurements(energies: dict, batch_size=4, repeats=(0, 1)):
    rows = []
    for (i, o), e in energies.items():
        for r in repeats:
            rows.append({"input_len": i, "output_len": o, "batch_size": batch_size, "repeat": r,
                         "energy_j": e + (0.5 if r else -0.5), "duration_s": 1.0, "energy_source": "cpu-estimate"})
    # A point at another batch size must not be used.
    rows.append({"input_len": 64, "output_len": 8, "batch_size": 1, "repeat": 0, "energy_j": 1e6,
                 "duration_s": 1.0, "energy_source": "cpu-estimate"})
    return pd.DataFrame(rows)


def test_estimate_is_sum_of_requests_over_batch_times_batch_energy():
    bins = pd.DataFrame({"input_bin": [64, 256], "output_bin": [8, 32], "n_requests": [10, 3]})
    m = _measurements({(64, 8): 2.0, (256, 32): 7.0, (256, 8): 99.0})
    summary = {"n_requests": 15, "n_included": 13, "n_excluded": 2}
    row, per_bin = workload_estimate(bins, summary, m, batch_size=4)
    assert row["energy_j"] == pytest.approx(10 / 4 * 2.0 + 3 / 4 * 7.0)
    assert row["energy_whole_batches_j"] == pytest.approx(math.ceil(10 / 4) * 2.0 + math.ceil(3 / 4) * 7.0)
    assert row["energy_per_request_j"] == pytest.approx(row["energy_j"] / 13)
    assert row["n_excluded"] == 2 and row["n_bins"] == 2
    assert per_bin["energy_batch_std_j"].gt(0).all()


def test_missing_point_names_the_bins():
    bins = pd.DataFrame({"input_bin": [64, 1024], "output_bin": [8, 8], "n_requests": [1, 1]})
    with pytest.raises(UserError, match=r"in=1024, out=8"):
        binned_estimate(bins, _measurements({(64, 8): 1.0}), batch_size=4)
