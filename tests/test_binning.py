import numpy as np
import pandas as pd

from llm_energy.workloads.binning import bin_edges_ceiling, bin_requests


def test_ceiling_edges_at_below_and_above():
    edges = [8, 16, 32]
    got = bin_edges_ceiling(np.array([1, 8, 9, 16, 17, 32, 33, 0]), edges)
    assert got.tolist() == [8, 8, 16, 16, 32, 32, 0, 8]


def test_bin_counts_add_up_and_excluded_are_counted():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"input_tokens": rng.integers(1, 3000, 500), "output_tokens": rng.integers(1, 700, 500)})
    table, summary = bin_requests(df, [64, 256, 1024, 2048], [8, 64, 512])
    inside = (df["input_tokens"] <= 2048) & (df["output_tokens"] <= 512)
    assert table["n_requests"].sum() == inside.sum() == summary["n_included"]
    assert summary["n_excluded"] == (~inside).sum() == 500 - summary["n_included"]
    assert summary["n_excluded_input"] == (df["input_tokens"] > 2048).sum()
    # Every bin key is an edge, and each request sits in the smallest edge at or above it.
    for row in table.itertuples():
        members = df[inside & (df["input_tokens"] <= row.input_bin) & (df["output_tokens"] <= row.output_bin)]
        lower_in = max([0] + [e for e in [64, 256, 1024, 2048] if e < row.input_bin])
        lower_out = max([0] + [e for e in [8, 64, 512] if e < row.output_bin])
        exact = members[(members["input_tokens"] > lower_in) & (members["output_tokens"] > lower_out)]
        assert len(exact) == row.n_requests


def test_non_power_of_two_request_goes_up_one_bin():
    df = pd.DataFrame({"input_tokens": [100, 128, 129], "output_tokens": [5, 8, 9]})
    table, _ = bin_requests(df, [64, 128, 256], [8, 16])
    assert set(map(tuple, table[["input_bin", "output_bin", "n_requests"]].to_numpy().tolist())) == {
        (128, 8, 2), (256, 16, 1)}
