"""The energy model of a cell, the serving simulation (static and continuous batching), the replay
comparison and the estimates' two methods."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from llm_energy.modelling.energy_model import (
    DEFAULT_TERMS,
    EnergyModel,
    ModelNotFittable,
    fit_cell,
    measured_points,
    min_points,
    nnls,
)
from llm_energy.modelling.serving import admission_steps, occupancy, serve, static_batches

# A made-up cell: 2 J per prefill step, 0.01 J per prompt token, attention 1e-6 J per token^2;
# 0.5 J per decode step, 0.05 J per sequence-step, 1e-5 J per context token attended.
TRUE = EnergyModel({"prefill_fixed": 2.0, "prefill_token": 0.01, "prefill_token_sq": 1e-6, "decode_step": 0.5,
                    "decode_seq_step": 0.05, "decode_context": 1e-5})
LABELS = {"hardware": "cpu-x", "model": "m", "variant": "vllm-eager", "decoding": "greedy",
          "energy_source": "cpu-estimate"}


def synthetic(model=TRUE, noise=0.0, inputs=(64, 256, 1024, 4096), outputs=(8, 32, 128, 512), seed=0, **labels):
    """Grid points at batch 8 and sweeps at batch 1 and 8, two repeats each, energies from ``model``."""
    rng = np.random.default_rng(seed)
    shapes = [(i, o, 8, "grid") for i in inputs for o in outputs]
    shapes += [(i, outputs[0], 1, "sweep") for i in inputs[:3]] + [(inputs[0], o, 1, "sweep") for o in outputs[1:3]]
    rows = []
    for i, o, b, role in shapes:
        for r in (0, 1):
            jitter = 1 + noise * rng.standard_normal()
            rows.append({"input_len": i, "output_len": o, "batch_size": b, "repeat": r, "role": role, "status": "ok",
                         "valid": True, "energy_j": float(model.batch_j(i, o, b)) * jitter,
                         "prefill_energy_j": float(model.prefill_j(i, b)) * jitter, "duration_s": 1.0,
                         **LABELS, **labels})
    return pd.DataFrame(rows)


# --- fitting -------------------------------------------------------------------------------------------

def _nnls_exhaustive(a, y):
    """The optimum is the unconstrained fit on one support whose coefficients are all non-negative."""
    import itertools

    best, best_x = float(y @ y), np.zeros(a.shape[1])
    for size in range(1, a.shape[1] + 1):
        for support in map(list, itertools.combinations(range(a.shape[1]), size)):
            x, *_ = np.linalg.lstsq(a[:, support], y, rcond=None)
            resid = float(np.sum((a[:, support] @ x - y) ** 2))
            if (x >= 0).all() and resid < best:
                best, best_x = resid, np.zeros(a.shape[1])
                best_x[support] = x
    return best_x


def test_nnls_keeps_coefficients_non_negative_and_finds_the_optimum():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert nnls(a, a @ np.array([2.0, 3.0])) == pytest.approx([2.0, 3.0])
    x = nnls(a, np.array([1.0, -1.0, 0.0]))  # the unconstrained answer is (1, -1)
    assert (x >= 0).all() and x[1] == 0
    rng = np.random.default_rng(0)
    for _ in range(50):  # columns of very different scales, as B·I² beside 1
        a = rng.standard_normal((30, 7)) * rng.uniform(0.01, 100, 7)
        y = rng.standard_normal(30)
        x, best = nnls(a, y), _nnls_exhaustive(a, y)
        assert (x >= 0).all()
        assert np.sum((a @ x - y) ** 2) == pytest.approx(np.sum((a @ best - y) ** 2), rel=1e-9)


def test_each_cell_takes_the_form_that_predicts_its_points_best():
    from llm_energy.modelling.energy_model import PER_SEQUENCE_TERMS

    per_seq = EnergyModel({**TRUE.coef, "prefill_seq": 0.3})
    assert fit_cell(synthetic(per_seq)).terms == PER_SEQUENCE_TERMS
    assert fit_cell(synthetic(per_seq)).loo_max_error_pct < 1e-6
    assert fit_cell(synthetic(per_seq), terms=DEFAULT_TERMS).loo_max_error_pct > 0.1
    assert fit_cell(synthetic()).terms == DEFAULT_TERMS  # a tie: the fewest terms


def test_model_recovers_a_known_function_within_2_percent():
    model = fit_cell(synthetic(noise=0.005))
    rng = np.random.default_rng(1)
    i, o, b = rng.integers(1, 4096, 200), rng.integers(1, 512, 200), rng.integers(1, 9, 200)
    rel = model.batch_j(i, o, b) / TRUE.batch_j(i, o, b) - 1
    assert np.abs(rel).max() < 0.02
    assert np.abs(model.prefill_j(i, b) / TRUE.prefill_j(i, b) - 1).max() < 0.02
    exact = fit_cell(synthetic())
    for term, value in TRUE.coef.items():
        assert exact.coef[term] == pytest.approx(value, rel=1e-6)


def test_leave_one_out_errors_are_reported_over_grid_points():
    exact = fit_cell(synthetic())
    assert exact.loo_median_error_pct < 1e-6 and exact.loo_max_error_pct < 1e-6
    noisy = fit_cell(synthetic(noise=0.05, seed=3))
    loo = noisy.loo
    assert len(loo) == noisy.n_points == 21 and loo["grid"].sum() == 16
    grid_errors = loo.loc[loo["grid"], "error_pct"].abs()
    assert noisy.loo_median_error_pct == pytest.approx(grid_errors.median())
    assert noisy.loo_max_error_pct == pytest.approx(grid_errors.max()) and noisy.loo_max_error_pct > 0
    # a left-out point's prediction comes from a fit without it: it differs from the full fit's
    row = loo.iloc[0]
    assert row["loo_energy_j"] != pytest.approx(float(noisy.batch_j(row.input_len, row.output_len, row.batch_size)),
                                                rel=1e-9)


def test_invalid_and_failed_rows_are_not_fitted():
    m = synthetic()
    bad = m.iloc[[0]].assign(valid=False, energy_j=1e9)
    oom = m.iloc[[1]].assign(status="oom", energy_j=float("nan"), batch_size=64)
    points = measured_points(pd.concat([m, bad, oom], ignore_index=True))
    assert len(points) == 21 and points["energy_j"].max() < 1e9


def test_too_few_points_is_one_clear_line():
    m = synthetic(inputs=(64, 256), outputs=(8,))  # 2 grid points + 2 sweep points
    assert len(measured_points(m)) < min_points(DEFAULT_TERMS)
    with pytest.raises(ModelNotFittable, match=r"^cpu-x/m: 4 valid measured point\(s\), the energy model needs at "
                                               r"least 7 .*sweeps"):
        fit_cell(m, name="cpu-x/m")


# --- serving: continuous batching (vLLM) -----------------------------------------------------------------

# Five requests, at most 2 running. By hand: r0 (in 10, out 3) and r1 (in 20, out 1) start at step 0;
# r1 is done at step 0, so r2 (in 30, out 2) starts at 1; r0 is done after step 2 and r2 after step 2,
# so r3 (in 40, out 5) and r4 (in 50, out 1) start at 3. Decoding: step 1: r0 (context 11);
# step 2: r0 (12) and r2 (31); step 3: none; steps 4-7: r3 (41 .. 44).
TRACE_IN, TRACE_OUT = np.array([10, 20, 30, 40, 50]), np.array([3, 1, 2, 5, 1])


def test_admission_refills_a_finished_slot_at_the_next_step():
    assert admission_steps(TRACE_OUT, 2).tolist() == [0, 0, 1, 3, 3]
    assert admission_steps(TRACE_OUT, 1).tolist() == [0, 3, 4, 6, 11]
    assert admission_steps(TRACE_OUT, 8).tolist() == [0, 0, 0, 0, 0]


def test_occupancy_and_context_per_step_match_the_hand_count():
    n, ctx = occupancy(TRACE_IN, TRACE_OUT, admission_steps(TRACE_OUT, 2))
    assert n.tolist() == [0, 1, 2, 0, 1, 1, 1, 1]
    assert ctx.tolist() == [0, 11, 43, 0, 41, 42, 43, 44]


def test_continuous_energy_is_the_steps_priced_by_the_model():
    s = serve(TRUE, TRACE_IN, TRACE_OUT, 2, "vllm")
    c = TRUE.coef
    decode = 6 * c["decode_step"] + 7 * c["decode_seq_step"] + (11 + 43 + 41 + 42 + 43 + 44) * c["decode_context"]
    # three steps admit (0, 1, 3): the fixed prefill part three times, each prompt its own part
    prefill = 3 * c["prefill_fixed"] + sum(c["prefill_token"] * i + c["prefill_token_sq"] * i * i for i in TRACE_IN)
    assert s.decode_energy_j == pytest.approx(decode) and s.prefill_energy_j == pytest.approx(prefill)
    assert s.energy_j == pytest.approx(decode + prefill) and s.n_steps == 8 and s.batch_size == 2


def test_equal_requests_cost_what_the_measured_batch_costs():
    # B equal requests served continuously or statically are exactly one measured batch
    for framework in ("vllm", "transformers"):
        s = serve(TRUE, [300] * 8, [40] * 8, 8, framework)
        assert s.energy_j == pytest.approx(float(TRUE.batch_j(300, 40, 8)))


# --- serving: static batches (transformers) -------------------------------------------------------------

def test_static_batches_are_padded_to_their_longest_request():
    longest_in, longest_out, sizes, padded = static_batches(TRACE_IN, TRACE_OUT, 2)
    assert longest_in.tolist() == [20, 40, 50] and longest_out.tolist() == [3, 5, 1] and sizes.tolist() == [2, 2, 1]
    assert padded.tolist() == [TRACE_IN[0] != TRACE_IN[1], TRACE_IN[2] != TRACE_IN[3], False]
    s = serve(TRUE, TRACE_IN, TRACE_OUT, 2, "transformers")
    expected = sum(float(TRUE.batch_j(i, o, b)) for i, o, b in [(20, 3, 2), (40, 5, 2), (50, 1, 1)])
    assert s.energy_j == pytest.approx(expected) and s.n_steps == 3
    # order matters: the same requests sorted by length pad less
    order = np.argsort(TRACE_OUT)
    assert serve(TRUE, TRACE_IN[order], TRACE_OUT[order], 2, "transformers").energy_j != pytest.approx(s.energy_j)


PADDED_TRUE = EnergyModel({**TRUE.coef, "padded_prefill_token": 0.002, "padded_prefill_token_sq": 3e-7,
                            "padded_decode_step": 0.05, "padded_decode_context": 2e-6})


def with_padded(model=PADDED_TRUE, **kw) -> pd.DataFrame:
    """``synthetic`` (equal-length batches) plus padded points at batch 8, energies from ``model``."""
    grid = synthetic(model, **kw)
    rows = []
    for i, o in [(64, 8), (256, 8), (1024, 8), (64, 128), (1024, 128), (4096, 8)]:  # the default's shapes
        for r in (0, 1):
            rows.append({**grid.iloc[0].to_dict(), "input_len": i, "output_len": o, "batch_size": 8, "repeat": r,
                         "role": "padded", "energy_j": float(model.batch_j(i, o, 8, True)),
                         "prefill_energy_j": float(model.prefill_j(i, 8, True))})
    return pd.concat([grid, pd.DataFrame(rows)], ignore_index=True)


def test_padded_batches_are_fitted_apart_and_charged_only_to_padded_static_batches():
    m = with_padded()
    model = fit_cell(m)
    assert set(model.terms) >= {"padded_prefill_token_sq", "padded_decode_context"}
    for i, o in [(100, 50), (700, 20), (2000, 300)]:  # between and beyond the padded points
        for padded in (False, True):
            assert float(model.batch_j(i, o, 8, padded)) == pytest.approx(float(PADDED_TRUE.batch_j(i, o, 8, padded)),
                                                                         rel=0.02)
    assert float(model.batch_j(1000, 50, 8, True)) > 1.05 * float(model.batch_j(1000, 50, 8))
    # a static batch of different prompt lengths pays the padded terms, one of equal lengths does not
    same = serve(model, [500] * 8, [40] * 8, 8, "transformers")
    mixed = serve(model, [500] + [100] * 7, [40] * 8, 8, "transformers")
    assert same.energy_j == pytest.approx(float(model.batch_j(500, 40, 8)))
    assert mixed.energy_j == pytest.approx(float(model.batch_j(500, 40, 8, True)))
    # continuous batching never pads: the padded terms do not enter vLLM's serving
    assert serve(model, [500] + [100] * 7, [40] * 8, 8, "vllm").energy_j < mixed.energy_j
    # a cell without padded points keeps the equal-length forms
    assert not any(t.startswith("padded") for t in fit_cell(synthetic()).terms)
    # the padded rows share shapes with grid rows, and neither moves the other's point
    pts = measured_points(m)
    assert pts.duplicated(["input_len", "output_len", "batch_size"]).sum() >= 1
    assert len(pts) == len(measured_points(synthetic())) + 6


def _padded_at(shapes, model=PADDED_TRUE, noise=0.0, seed=1) -> pd.DataFrame:
    """The grid of ``synthetic`` plus padded points at ``shapes`` only, with a relative noise per window."""
    rng = np.random.default_rng(seed)
    grid = synthetic(model)
    rows = [{**grid.iloc[0].to_dict(), "input_len": i, "output_len": o, "batch_size": 8, "repeat": r, "role": "padded",
             "energy_j": float(model.batch_j(i, o, 8, True)) * (1 + noise * rng.standard_normal()),
             "prefill_energy_j": float(model.prefill_j(i, 8, True)) * (1 + noise * rng.standard_normal())}
            for i, o in shapes for r in (0, 1)]
    return pd.concat([grid, pd.DataFrame(rows)], ignore_index=True)


def test_padded_decode_terms_need_a_padded_point_that_shows_decode():
    # Padded points at the shortest output only: their decode is a small difference of two windows, so
    # the padded decode terms are not fitted (they would be extrapolated to long outputs), and the
    # model says why; the padded prefill terms, measured directly, stay.
    model = fit_cell(_padded_at([(64, 8), (256, 8), (1024, 8), (4096, 8)], noise=0.02))
    assert {"padded_prefill_token", "padded_prefill_token_sq"} <= set(model.terms)
    assert not {"padded_decode_step", "padded_decode_context"} & set(model.terms)
    assert model.form_note.startswith("padded decode terms left out: no padded point's decode is 50 %")
    # with padded points at a long output (decode most of their energy) at a short and a long input, and
    # the terms real, they are fitted
    shown = fit_cell(_padded_at([(64, 8), (256, 8), (1024, 8), (64, 128), (1024, 128), (4096, 8)]))
    assert "padded_decode_context" in shown.terms and shown.form_note == ""
    for i, o in [(700, 60), (3000, 200)]:  # between and beyond the points that show the padded decode
        assert float(shown.batch_j(i, o, 8, True)) == pytest.approx(float(PADDED_TRUE.batch_j(i, o, 8, True)), rel=0.02)


def test_a_padded_point_at_the_longest_output_edge_steadies_the_estimate_of_long_padded_batches():
    # The default's padded shapes with and without (1024, 512), the longest sweep input at the longest
    # output edge, each window 5 % noisy (grid and padded points, 40 seeds): the padded batches of a
    # trace of long prompts and outputs up to 500 tokens, served by the fitted model, spread less around
    # the truth with it (the padded decode context term then rests on a decode as long as the trace's).
    old = [(64, 8), (256, 8), (1024, 8), (64, 128), (1024, 128), (4096, 8)]
    rng = np.random.default_rng(5)
    inputs, outputs = rng.integers(200, 4000, 64), rng.integers(20, 500, 64)
    true = serve(PADDED_TRUE, inputs, outputs, 8, "transformers").energy_j

    def errors(shapes):
        out = []
        for seed in range(40):
            noisy = _padded_at(shapes, noise=0.05, seed=seed)
            grid = noisy["role"] == "grid"
            jitter = 1 + 0.05 * np.random.default_rng([seed, 1]).standard_normal(int(grid.sum()))
            noisy.loc[grid, ["energy_j", "prefill_energy_j"]] *= jitter[:, None]
            model = fit_cell(noisy, loo=False)
            out.append(100 * (serve(model, inputs, outputs, 8, "transformers").energy_j / true - 1))
        return np.asarray(out)

    without, with_long = errors(old), errors([*old, (1024, 512)])
    assert with_long.std() < 0.85 * without.std()
    assert np.abs(with_long).max() < np.abs(without).max()


def test_padded_decode_terms_need_decode_shown_at_a_short_and_a_long_input():
    from llm_energy.modelling.energy_model import decode_shown

    # decode shown at one input length only: the step and the context terms cannot be told apart
    one = fit_cell(_padded_at([(64, 8), (256, 8), (1024, 8), (1024, 128), (4096, 8)], noise=0.01))
    assert not {"padded_decode_step", "padded_decode_context"} & set(one.terms)
    assert "at input 1024 only; both terms need two input lengths, one of at least 1024 tokens" in one.form_note
    # decode shown at short prompts only: the context term would be extrapolated from them to long prompts
    short = _padded_at([(64, 8), (64, 128), (128, 128), (4096, 8)], noise=0.01)
    pts = measured_points(short)
    assert sorted(set(pts.loc[decode_shown(pts), "input_len"])) == [64, 128]
    model = fit_cell(short)
    assert not {"padded_decode_step", "padded_decode_context"} & set(model.terms)
    assert "at input 64, 128 only" in model.form_note
    # the padded points' leave-one-out error is reported either way
    assert set(model.loo_by_role()) == {"grid", "sweep", "padded"}


def test_term_shares_sum_to_the_estimate_and_an_unseen_dominant_term_is_flagged():
    from llm_energy.estimates.replay import fit_flags, term_shares

    model = fit_cell(synthetic())
    sample = _sample()
    shares = term_shares(sample, model, "vllm", "greedy", 8, None)
    assert set(shares) == set(model.terms) and sum(shares.values()) == pytest.approx(1.0)
    served = serve(model, sample["input_tokens"], sample["output_tokens"], 8, "vllm").energy_j
    alone = serve(model.only("decode_step"), sample["input_tokens"], sample["output_tokens"], 8, "vllm").energy_j
    assert shares["decode_step"] == pytest.approx(alone / served)
    support = model.support_shares(measured_points(synthetic()))
    assert all(0 <= s <= 1 for s in support.values()) and max(support.values()) > 0.5
    assert fit_flags(shares, support) == ""  # every term that matters is shown by some point
    flag = fit_flags({"padded_decode_context": 0.7, "decode_step": 0.3}, {"padded_decode_context": 0.04})
    assert flag == ("padded_decode_context supplies 70 % of this estimate, and no measured point shows it above "
                    "4 % of its energy")


def test_speculative_transformers_serves_one_request_at_a_time():
    s = serve(TRUE, TRACE_IN, TRACE_OUT, 2, "transformers", decoding="speculative")
    assert s.batch_size == 1 and s.energy_j == pytest.approx(float(np.sum(TRUE.batch_j(TRACE_IN, TRACE_OUT, 1))))


# --- extrapolation and context ---------------------------------------------------------------------------

def test_requests_beyond_the_measured_lengths_are_extrapolated_and_counted_never_dropped():
    model = fit_cell(synthetic())
    inputs, outputs = np.array([100, 5000, 100, 9000]), np.array([10, 10, 600, 10])
    s = serve(model, inputs, outputs, 8, "vllm", context_len=8704)
    assert s.n_extrapolated == 2 and s.n_excluded == 1 and s.n_included == 3 and s.n_requests == 4
    inside = serve(model, inputs[:1], outputs[:1], 8, "vllm", context_len=8704)
    assert s.energy_j > inside.energy_j > 0
    assert serve(model, inputs, outputs, 8, "vllm").n_excluded == 0  # no context length known: none excluded


# --- the replay comparison -------------------------------------------------------------------------------

EDGES_IN, EDGES_OUT = [64, 256, 1024, 4096], [8, 32, 128, 512]


def _sample(n=24, seed=5):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"input_tokens": rng.integers(1, 4096, n), "output_tokens": rng.integers(1, 512, n)})


def _replays(sample, energies, variant="vllm-eager", workload="w"):
    """A replay file's rows: one per metered run, each with the sample's requests."""
    from llm_energy.estimates.replay import replay_rows

    runs = [{"run": k, "n_requests": len(sample), "replay_energy_j": e, "replay_duration_s": 1.0 + k,
             "replay_tokens_generated": int(sample["output_tokens"].sum()),
             "replay_tokens_requested": int(sample["output_tokens"].sum()), "energy_source": "cpu-estimate",
             "batch_size": 8} for k, e in enumerate(energies)]
    labels = {"hardware": "cpu-x", "model": "m", "variant": variant, "decoding": "greedy"}
    return pd.DataFrame(replay_rows(workload, sample, runs, labels, seed=0))


@pytest.mark.parametrize("variant", ["vllm-eager", "transformers-eager"])
def test_validation_compares_both_estimates_with_the_mean_of_two_metered_runs(tmp_path, variant):
    from llm_energy.estimates.replay import compare, validate

    sample = _sample()
    served = serve(TRUE, sample["input_tokens"], sample["output_tokens"], 8, variant.split("-")[0]).energy_j
    replays = _replays(sample, [served * 0.98, served * 1.02], variant)
    replays.to_parquet(tmp_path / "replay.parquet")  # the list columns survive the file
    replays = pd.read_parquet(tmp_path / "replay.parquet")
    m = synthetic(variant=variant)
    v = validate(replays, m, EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    assert v["n_replay_runs"] == 2 and v["replay_energy_j"] == pytest.approx(served)
    assert v["replay_cv"] == pytest.approx(np.std([0.98, 1.02], ddof=1))
    binned = compare(sample, m, EDGES_IN, EDGES_OUT)["estimate_energy_j"]
    assert v["estimate_energy_j"] == pytest.approx(binned)
    assert v["error_pct"] == pytest.approx(100 * (binned / served - 1))
    assert v["model_error_pct"] == pytest.approx(100 * (v["model_estimate_energy_j"] / served - 1))
    assert abs(v["model_error_pct"]) < 1.0 < abs(v["error_pct"])  # the model knows how the stack serves
    assert v["loo_max_error_pct"] < 1e-6 and v["model_note"] == ""
    # the fit's diagnostics: its form, leave-one-out error per point role, each term's share, no flag
    assert v["model_form"].split(",") == list(fit_cell(m).terms) and v["loo_grid_pct"] < 1e-6
    # its interval: the two runs' standard error only (this replay has no control points, and says so)
    assert v["interval_pct"] == pytest.approx(100 * v["replay_cv"] / math.sqrt(2))
    assert "not included" in v["interval_note"]
    assert v["loo_padded_pct"] != v["loo_padded_pct"]  # NaN: the cell measured no padded point
    assert sum(json.loads(v["model_term_shares"]).values()) == pytest.approx(1.0, abs=1e-3) and v["model_flag"] == ""


def test_each_validation_row_has_an_interval_of_the_replay_the_meter_and_the_model():
    from llm_energy.estimates.drift import intervals

    row = {"replay_cv": 0.04, "n_replay_runs": 4, "meter_drift_pct": 6.0, "control_ratio_min_pct": -2.0,
           "control_ratio_max_pct": 14.0, "loo_median_error_pct": 4.0}
    got = intervals(row)
    assert got["replay_se_pct"] == pytest.approx(2.0)  # 4 % spread over 4 runs
    assert got["meter_interval_pct"] == pytest.approx(10.0)  # drift 6, half the control range 8
    assert got["interval_pct"] == pytest.approx(math.sqrt(2.0**2 + 10.0**2))
    assert got["model_interval_pct"] == pytest.approx(math.sqrt(2.0**2 + 10.0**2 + 4.0**2))
    assert got["interval_note"] == ""
    blind = intervals({**row, "meter_drift_pct": math.nan, "control_ratio_min_pct": math.nan,
                       "control_ratio_max_pct": math.nan})
    assert blind["meter_interval_pct"] == 0 and "not included" in blind["interval_note"]


def test_the_drift_corrected_errors_bring_the_replay_to_the_grid_jobs_meter_level():
    from llm_energy.estimates.drift import drift_corrected, intervals

    row = {"replay_energy_j": 112.0, "estimate_energy_j": 150.0, "model_estimate_energy_j": 100.0,
           "replay_cv": 0.04, "n_replay_runs": 4, "meter_drift_pct": 12.0, "control_ratio_min_pct": 8.0,
           "control_ratio_max_pct": 16.0, "loo_median_error_pct": 3.0}
    row.update(intervals(row))
    got = drift_corrected(row)
    # the control points cost 12 % more in the replay job: the replay at the grid job's level is 100 J
    assert got["replay_energy_corrected_j"] == pytest.approx(100.0)
    assert got["model_error_corrected_pct"] == pytest.approx(0.0, abs=1e-9)
    assert got["error_corrected_pct"] == pytest.approx(50.0)
    # the drift's level is taken out, its uncertainty (half the control range, 4) stays in the interval
    assert got["interval_corrected_pct"] == pytest.approx(math.hypot(2.0, 4.0))
    assert got["model_interval_corrected_pct"] == pytest.approx(math.sqrt(2.0**2 + 4.0**2 + 3.0**2))
    assert got["model_interval_corrected_pct"] < row["model_interval_pct"]
    blind = drift_corrected({**row, "meter_drift_pct": math.nan})
    assert all(v != v for v in blind.values())  # NaN: without control points nothing is corrected


def test_a_replayed_request_beyond_every_measured_length_is_counted_and_said(caplog):
    from llm_energy.estimates.replay import validate

    sample = _sample()
    sample.loc[0, ["input_tokens", "output_tokens"]] = [6000, 100]  # past the longest measured input
    with caplog.at_level("INFO", logger="llm_energy.estimates.replay"):
        v = validate(_replays(sample, [10.0, 11.0]), synthetic(), EDGES_IN, EDGES_OUT, name="cell c").iloc[0]
    assert v["model_n_extrapolated"] == 1
    assert ("cell c, w: 1 of 24 replayed requests lie beyond the measured lengths (input 4096, output 512 tokens): "
            "the model extrapolates them") in caplog.messages


def test_control_points_spread_over_the_grid_energies_at_the_grid_batch():
    from llm_energy.estimates.replay import control_points

    m = synthetic()
    m.loc[m.index[:2], "status"] = "failed"  # a failed row never picks a shape
    grid = m[(m["role"] == "grid") & (m["status"] == "ok")].groupby(["input_len", "output_len"])["energy_j"].mean()
    shapes = control_points(m, 2, 8)
    assert len(shapes) == 2 and all(s in grid.index for s in shapes)
    ranked = list(grid.sort_values().index)
    assert [ranked.index(s) for s in shapes] == [round(len(ranked) / 3) - 1, round(2 * len(ranked) / 3) - 1]
    assert control_points(m, 0, 8) == [] and control_points(m, 2, 4) == []  # none asked, or no grid at batch 4


def test_control_points_of_a_workload_are_the_grid_shapes_that_carry_its_replay_energy():
    from llm_energy.estimates.replay import control_points, replay_shapes

    m = synthetic()
    # Static batches of 8: one batch padded to (1000, 400) and one of short requests; the long batch's
    # nearest shape (1024, 512) carries most of the energy, the short one's (64, 8) the rest.
    long = [(1000, 400)] + [(30, 10)] * 7
    short = [(50, 6)] * 8
    sample = pd.DataFrame(long + short, columns=["input_tokens", "output_tokens"])
    assert control_points(m, 2, 8, sample, "transformers") == [(1024, 512), (64, 8)]
    # Continuous batching prices each request on its own: fifteen short requests and one long one still put
    # (1024, 512) first (the long one outweighs the short ones at this model) and (64, 8) next.
    assert control_points(m, 2, 8, sample, "vllm") == [(1024, 512), (64, 8)]
    carried = replay_shapes(m[m["role"] == "grid"].groupby(["input_len", "output_len"])["energy_j"].mean(),
                            sample, 8, "transformers")
    grid = m[m["role"] == "grid"].groupby(["input_len", "output_len"])["energy_j"].mean()
    assert carried.iloc[0] == pytest.approx(grid[(1024, 512)]) and carried.iloc[1] == pytest.approx(grid[(64, 8)])
    # A sample of one shape still gets k points: the next nearest to it, not the spread over the grid.
    one = pd.DataFrame([(64, 8)] * 8, columns=["input_tokens", "output_tokens"])
    picks = control_points(m, 2, 8, one, "transformers")
    assert picks[0] == (64, 8) and picks[1] in {(64, 32), (256, 8)}
    assert control_points(m, 2, 8, one, "transformers") != control_points(m, 2, 8)


def test_meter_drift_is_the_control_points_level_in_the_replay_job_against_the_grid_job(tmp_path):
    from llm_energy.estimates.replay import validate

    sample = _sample()
    m = synthetic()
    served = serve(TRUE, sample["input_tokens"], sample["output_tokens"], 8, "vllm").energy_j
    shapes = [(256, 32), (1024, 128)]
    # The replay job's meter reads 10 % and 21 % above the grid job's at the two points: +15.4 % geometric mean.
    grid_e = [float(TRUE.batch_j(i, o, 8)) for i, o in shapes]
    controls = {"control_input_len": [i for i, _ in shapes], "control_output_len": [o for _, o in shapes],
                "control_batch_size": 8, "control_energy_j": [grid_e[0] * 1.10, grid_e[1] * 1.21],
                "control_end_energy_j": [grid_e[0] * 1.30, grid_e[1] * 1.30]}
    replays = _replays(sample, [served * 1.15, served * 1.15]).assign(**{k: [v] * 2 for k, v in controls.items()})
    replays.to_parquet(tmp_path / "replay.parquet")
    v = validate(pd.read_parquet(tmp_path / "replay.parquet"), m, EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    assert v["n_control_points"] == 2
    assert v["meter_drift_pct"] == pytest.approx(100 * (math.sqrt(1.10 * 1.21) - 1))
    assert (v["control_ratio_min_pct"], v["control_ratio_max_pct"]) == (pytest.approx(10.0), pytest.approx(21.0))
    assert v["meter_drift_end_pct"] == pytest.approx(30.0)  # the same points after the replays
    # The model error stays as metered: about 13 % low against the replay, the drift beside it.
    assert v["model_error_pct"] == pytest.approx(100 * (1 / 1.15 - 1), abs=1.0)
    # A replay file of before the control points: no drift, said as NaN, never 0.
    old = validate(_replays(sample, [served, served]), m, EDGES_IN, EDGES_OUT).iloc[0]
    assert old["n_control_points"] == 0
    assert math.isnan(old["meter_drift_pct"]) and math.isnan(old["meter_drift_end_pct"])


def _phase_controls(shapes, prefill_level: float, decode_level: float) -> dict:
    """The replay job's control points when its meter reads each phase at its own level."""
    pre = [float(TRUE.prefill_j(i, 8)) for i, _ in shapes]
    full = [float(TRUE.batch_j(i, o, 8)) for i, o in shapes]
    return {"control_input_len": [i for i, _ in shapes], "control_output_len": [o for _, o in shapes],
            "control_batch_size": 8, "control_energy_j": [p * prefill_level + (f - p) * decode_level
                                                         for p, f in zip(pre, full)],
            "control_prefill_energy_j": [p * prefill_level for p in pre]}


def test_the_phase_correction_brings_each_phase_of_the_model_to_the_replay_jobs_level():
    """A replay job whose meter reads prefill 10 % higher and decode 40 % lower than the grid job's (a CPU's
    decode and prefill drift apart): no one level brings the model back, the two phases' drifts do."""
    from llm_energy.estimates.replay import validate

    sample, m = _sample(), synthetic()
    s = serve(TRUE, sample["input_tokens"], sample["output_tokens"], 8, "vllm")
    replay = s.prefill_energy_j * 1.10 + s.decode_energy_j * 0.60
    controls = _phase_controls([(256, 32), (1024, 128)], 1.10, 0.60)
    replays = _replays(sample, [replay, replay]).assign(**{k: [v] * 2 for k, v in controls.items()})
    v = validate(replays, m, EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    assert v["meter_drift_prefill_pct"] == pytest.approx(10.0) and v["meter_drift_decode_pct"] == pytest.approx(-40.0)
    assert v["phase_drift_note"] == ""
    assert v["model_error_phase_pct"] == pytest.approx(0.0, abs=1e-6)
    # The raw error keeps the change of shape, and one level (the control points' mix of the phases, not
    # the replay's) only part of it: 27 % and 4 % here; the raw error stays beside the corrected ones.
    assert abs(v["model_error_pct"]) > 20 and abs(v["model_error_corrected_pct"]) > 3
    assert v["model_estimate_phase_j"] == pytest.approx(replay)


def test_a_phase_the_control_points_barely_show_takes_the_levels_drift(tmp_path):
    from llm_energy.estimates.replay import validate

    sample, m = _sample(), synthetic()
    served = serve(TRUE, sample["input_tokens"], sample["output_tokens"], 8, "vllm").energy_j
    controls = _phase_controls([(4096, 8)], 1.10, 0.60)  # a long prompt, 8 tokens: decode ~2 % of its energy
    v = validate(_replays(sample, [served, served]).assign(**{k: [v] * 2 for k, v in controls.items()}), m,
                 EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    assert v["meter_drift_prefill_pct"] == pytest.approx(10.0)
    assert v["meter_drift_decode_pct"] == pytest.approx(v["meter_drift_pct"])  # not the 2 %'s -40 %
    assert v["phase_drift_note"].startswith("decode is 2 % of the control points' energy")
    # The replay job does not measure such a prefill (too small to read): it takes the level, and the
    # decode is the full windows less the prefill's grid energy at that level.
    from llm_energy.estimates.drift import MIN_PHASE_SHARE, prefill_share

    shapes = [(64, 512)]
    assert prefill_share(m, shapes, 8) < MIN_PHASE_SHARE
    unread = {**_phase_controls(shapes, 1.10, 0.60), "control_prefill_energy_j": [math.nan]}
    path = tmp_path / "unread.parquet"  # as the replay job writes it: the NaN reads back as None
    _replays(sample, [served, served]).assign(**{k: [v] * 2 for k, v in unread.items()}).to_parquet(path)
    u = validate(pd.read_parquet(path), m, EDGES_IN, EDGES_OUT, context_len=8704).iloc[0]
    level = u["meter_drift_pct"]
    assert u["meter_drift_prefill_pct"] == pytest.approx(level) and u["phase_drift_note"].startswith("prefill is")
    pre, full = float(TRUE.prefill_j(64, 8)), float(TRUE.batch_j(64, 512, 8))
    decode = (pre * 1.10 + (full - pre) * 0.60 - pre * (1 + level / 100)) / (full - pre)
    assert u["meter_drift_decode_pct"] == pytest.approx(100 * (decode - 1))
    assert not math.isnan(u["model_error_phase_pct"])
    # A replay file of before the prefill windows: no phase drift, NaN, never 0.
    old = validate(_replays(sample, [served, served]), m, EDGES_IN, EDGES_OUT).iloc[0]
    assert math.isnan(old["meter_drift_prefill_pct"]) and math.isnan(old["model_error_phase_pct"])


def test_each_workload_carries_the_drift_of_its_own_replay_job():
    """One replay job (and file) per workload: the validation concatenates them, and each row's drift is
    its own job's control points against the grid job's, never another workload's."""
    from llm_energy.estimates.replay import validate

    sample, m = _sample(), synthetic()
    served = serve(TRUE, sample["input_tokens"], sample["output_tokens"], 8, "vllm").energy_j
    shape = (256, 32)
    grid_e = float(TRUE.batch_j(*shape, 8))

    def job(workload: str, level: float) -> pd.DataFrame:
        controls = {"control_input_len": [shape[0]], "control_output_len": [shape[1]], "control_batch_size": 8,
                    "control_energy_j": [grid_e * level], "control_end_energy_j": [grid_e * level]}
        return _replays(sample, [served, served]).assign(workload=workload, **{k: [v] * 2 for k, v in controls.items()})

    both = pd.concat([job("a", 1.05), job("b", 0.80)], ignore_index=True)
    v = validate(both, m, EDGES_IN, EDGES_OUT, context_len=8704).set_index("workload")
    assert v.loc["a", "meter_drift_pct"] == pytest.approx(5.0) and v.loc["b", "meter_drift_pct"] == pytest.approx(-20.0)
    assert v.loc["b", "meter_interval_pct"] > v.loc["a", "meter_interval_pct"]


def test_validation_of_a_cell_too_small_for_the_model_flags_it():
    from llm_energy.estimates.replay import validate

    sample = _sample(n=6)
    sample["input_tokens"] = np.minimum(sample["input_tokens"], 64)
    sample["output_tokens"] = np.minimum(sample["output_tokens"], 8)
    v = validate(_replays(sample, [10.0, 11.0]), synthetic(inputs=(64,), outputs=(8,)), EDGES_IN, EDGES_OUT).iloc[0]
    assert v["estimate_energy_j"] > 0 and math.isnan(v["model_estimate_energy_j"])
    assert "needs at least" in v["model_note"]


def test_validation_without_a_binned_estimate_says_why_and_still_has_the_model():
    from llm_energy.estimates.replay import validate

    m = synthetic()
    m.loc[(m["input_len"] == 4096) & (m["output_len"] == 512), "valid"] = False  # a bin that failed validation
    sample = pd.DataFrame({"input_tokens": [4000, 100], "output_tokens": [500, 10]})
    v = validate(_replays(sample, [10.0, 11.0]), m, EDGES_IN, EDGES_OUT).iloc[0]
    assert math.isnan(v["estimate_energy_j"]) and "in=4096, out=512" in v["estimate_note"]
    assert v["model_estimate_energy_j"] > 0 and v["model_n_extrapolated"] == 0


# --- the estimates: two methods, one contract -------------------------------------------------------------

def _estimate(validation=None, cells=None):
    from llm_energy.estimates.estimate import estimate_cells
    from llm_energy.estimates.specs import load_specs
    from llm_energy.models.flops import Arch
    from llm_energy.workloads.binning import bin_requests

    profile = _sample(n=200)
    profile.loc[0, ["input_tokens", "output_tokens"]] = [6000, 100]  # beyond the top edge: binning drops it
    profile.loc[1, ["input_tokens", "output_tokens"]] = [9000, 100]  # beyond the model's context too
    bins, summary = bin_requests(profile, EDGES_IN, EDGES_OUT)
    arch = Arch(hidden=64, layers=1, heads=1, kv_heads=1, head_dim=64, vocab=100, intermediate=128)
    cells = cells or [("a.parquet", synthetic(variant="vllm-eager")),
                      ("b.parquet", synthetic(variant="transformers-eager"))]
    return estimate_cells([("w", bins, summary)], cells, {"m": arch},
                          load_specs({"cpu-x": {"tdp_w": 8, "bf16_dense_tflops": 0.5}}),
                          profiles={"w": profile}, contexts={"m": 8704}, validation=validation)


def test_estimates_have_both_methods_with_the_same_columns():
    est, by_bin, _ = _estimate()
    assert sorted(est["method"]) == ["binned", "binned", "model", "model"]
    for col in ("energy_j", "energy_per_request_j", "n_included", "n_excluded", "batch_size_max", "ideal_energy_j",
                "pct_above_ideal", "energy_source", "n_extrapolated", "systematic_error_pct", "systematic_error_note"):
        assert col in est, col
    key = ["workload", "hardware", "model", "variant", "decoding", "method"]
    assert not est.duplicated(key).any()
    binned, model = est[est["method"] == "binned"], est[est["method"] == "model"]
    assert binned["energy_j"].gt(0).all() and model["energy_j"].gt(0).all()
    # like for like: both methods price the requests within the top bin edges, and say so
    assert (binned["n_excluded"] == 2).all() and (binned["n_included"] == 198).all()
    assert (model["n_requests"] == 198).all() and (model["n_included"] == 198).all()
    assert (model["n_extrapolated"] == 0).all() and (model["n_excluded"] == 0).all()
    assert set(est["coverage"]) == {"requests within the top bin edges (input <= 4096, output <= 512)"}
    # beside it, the model's whole trace: every request, one past the edges extrapolated, one past the context
    assert (model["whole_trace_n_requests"] == 200).all() and (model["whole_trace_n_included"] == 199).all()
    assert (model["whole_trace_n_extrapolated"] == 1).all()
    assert (model["whole_trace_energy_j"] > model["energy_j"]).all()
    assert (model["whole_trace_ideal_energy_j"] > model["ideal_energy_j"]).all()
    assert binned["whole_trace_energy_j"].isna().all()
    assert model["loo_max_error_pct"].notna().all()
    assert model["ideal_energy_j"].gt(0).all() and set(by_bin["variant"]) == {"vllm-eager", "transformers-eager"}
    # no replay: NaN with the reason
    assert est["systematic_error_pct"].isna().all() and est["systematic_error_note"].str.contains("no replay").all()


def test_systematic_error_is_the_largest_error_of_the_method_in_the_replays():
    val = pd.DataFrame({"workload": ["w1", "w2"], "hardware": "cpu-x", "model": "m", "variant": "vllm-eager",
                        "decoding": "greedy", "error_pct": [80.0, -120.0], "model_error_pct": [-4.0, 3.0]})
    est, _, _ = _estimate(validation=val)
    got = est.set_index(["variant", "method"])["systematic_error_pct"]
    assert got[("vllm-eager", "binned")] == 120.0 and got[("vllm-eager", "model")] == 4.0
    assert math.isnan(got[("transformers-eager", "binned")])
    notes = est.set_index(["variant", "method"])["systematic_error_note"]
    assert notes[("vllm-eager", "binned")] == "largest of 2 replayed workload(s)"
    assert notes[("transformers-eager", "model")].startswith("no replay validation")
    # replayed, but the binned method estimated none of the samples (bins without valid measurements)
    est, _, _ = _estimate(validation=val.assign(error_pct=float("nan")))
    notes = est.set_index(["variant", "method"])["systematic_error_note"]
    assert notes[("vllm-eager", "binned")].startswith("the cell was replayed, but this method estimated none")


def test_savings_and_existing_readers_see_one_binned_row_per_stack():
    from llm_energy.estimates.estimate import savings

    est, _, _ = _estimate()
    sav = savings(est, [{"baseline": "transformers-eager", "optimized": "vllm-eager"}])
    binned = est[est["method"] == "binned"].set_index("variant")["energy_j"]
    assert len(sav) == 1
    assert sav["saving_pct"].iloc[0] == pytest.approx(100 * (1 - binned["vllm-eager"] / binned["transformers-eager"]))


def test_a_cell_too_small_for_the_model_is_a_flagged_row_not_a_silent_nan():
    small = synthetic(inputs=(64, 256, 1024, 4096), outputs=(8, 32, 128, 512))
    small = small[(small["role"] == "grid") & (small["output_len"] == 8)]  # 4 points
    est, _, left = _estimate(cells=[("a.parquet", synthetic()), ("c.parquet", small.assign(variant="vllm-cudagraph"))])
    flagged = est[(est["variant"] == "vllm-cudagraph") & (est["method"] == "model")]
    assert len(flagged) == 1 and math.isnan(flagged["energy_j"].iloc[0])
    assert "needs at least 7" in flagged["model_note"].iloc[0]
    assert left["file"].tolist() == ["c.parquet"]  # its binned estimate lacks bins: left out, as before


def test_request_flops_match_the_flops_module():
    from llm_energy.estimates.estimate import request_flops
    from llm_energy.models.flops import Arch, generation_flops

    arch = Arch(hidden=4096, layers=32, heads=32, kv_heads=8, head_dim=128, vocab=128256, intermediate=14336)
    inputs, outputs = [1, 300, 2048], [1, 64, 513]
    expected = sum(generation_flops(arch, i, o) for i, o in zip(inputs, outputs))
    assert request_flops(arch, inputs, outputs) == pytest.approx(expected, rel=1e-12)
