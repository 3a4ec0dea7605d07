"""The run's summary, the page a person reads first: per workload and stack the energy per request and
per 1,000 output tokens, what the estimates leave out, the worst replay error of each method, the
findings' verdict counts, and in words everything a reader should not trust.

Every number comes from a stage's file (the estimates, the bin summaries, the replay validation, the
findings); only the per-token figure divides, by the real output tokens of the requests the estimates
price (the profile's, within the top bin edges). Rule ``summary`` writes ``paper/summary.md`` and
``paper/tables/leaderboard.csv``; the Snakefile's ``onsuccess`` prints :func:`short_form`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy.paper.criteria import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED
from llm_energy.paper.tables import KEYS, METHODS
from llm_energy.workloads.binning import excluded_message, within_edges

VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
CPU_ESTIMATE = "cpu-estimate"
# The replay columns of each method in results/validation/ (error against the replay, its noise interval).
ERROR_COLUMNS = {"binned": ("error_pct", "interval_pct"), "model": ("model_error_pct", "model_interval_pct")}
SHORT_LINES = 25
J_PER_WH = 3600.0


def mean_output_tokens(profile: pd.DataFrame, bin_summary: dict | None) -> float:
    """Mean real output tokens of the requests the estimates price: within the top bin edges (the
    whole profile when the summary has no edges)."""
    if bin_summary and "input_edges" in bin_summary:
        profile = profile[within_edges(profile, bin_summary["input_edges"], bin_summary["output_edges"])]
    return float(profile["output_tokens"].mean()) if len(profile) else math.nan


def wh_per_1k_tokens(energy_per_request_j: float | pd.Series, mean_tokens: float | pd.Series):
    """Wh per 1,000 output tokens from joules per request and output tokens per request."""
    return energy_per_request_j / mean_tokens * 1000 / J_PER_WH


def stack_name(r) -> str:
    """A stack in words: model, variant, and the decoding where it is not greedy."""
    decoding = "" if r["decoding"] in ("greedy", "") else f"/{r['decoding']}"
    return f"{r['model']} {r['variant']}{decoding}"


def _replay_columns(validation: pd.DataFrame | None) -> pd.DataFrame:
    """Per workload and stack, each method's replay error and interval (empty without replays)."""
    cols = [f"{m}_{k}" for m in METHODS for k in ("replay_error_pct", "interval_pct")]
    if validation is None or validation.empty:
        return pd.DataFrame(columns=KEYS + cols)
    out = validation[KEYS].copy()
    for method, (err, interval) in ERROR_COLUMNS.items():
        out[f"{method}_replay_error_pct"] = validation.get(err, np.nan)
        out[f"{method}_interval_pct"] = validation.get(interval, np.nan)
    return out.drop_duplicates(KEYS, keep="last")


def _recommended(row) -> str:
    """The method whose worst replay error (Table 4's systematic error) is smaller; the paper's binned
    method where neither was replayed or they tie."""
    b, m = row["binned_systematic_error_pct"], row["model_systematic_error_pct"]
    if pd.isna(row["model_energy_per_request_j"]) or (pd.isna(m) and not pd.isna(b)):
        return "binned"
    if pd.isna(row["binned_energy_per_request_j"]) or (pd.isna(b) and not pd.isna(m)):
        return "model"
    return "model" if not pd.isna(m) and m < b else "binned"


def leaderboard(estimates: pd.DataFrame, bins: dict[str, dict], mean_tokens: dict[str, float],
                validation: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per workload and stack: each method's energy per request and Wh per 1,000 output tokens,
    the recommended method's (ranked within the workload, 1 = least energy), the requests left out,
    and the replay errors (this workload's, and the worst over workloads: Table 4's systematic error)."""
    est = estimates if "method" in estimates else estimates.assign(method="binned")
    board = est[KEYS].drop_duplicates()
    for method in METHODS:
        part = est[est["method"] == method].reindex(
            columns=KEYS + ["energy_per_request_j", "systematic_error_pct", "energy_source"])
        board = board.merge(part.rename(columns={c: f"{method}_{c}" for c in part.columns if c not in KEYS}),
                            on=KEYS, how="left")
    board["energy_source"] = board["binned_energy_source"].fillna(board["model_energy_source"])
    board = board.drop(columns=[f"{m}_energy_source" for m in METHODS])
    board["mean_output_tokens"] = board["workload"].map(mean_tokens)
    for method in METHODS:
        board[f"{method}_wh_per_1k_output_tokens"] = wh_per_1k_tokens(board[f"{method}_energy_per_request_j"],
                                                                      board["mean_output_tokens"])
    for col in ("n_requests", "n_included", "n_excluded", "excluded_token_share"):
        board[col] = board["workload"].map({w: s.get(col, np.nan) for w, s in bins.items()})
    board["excluded_request_share"] = board["n_excluded"] / board["n_requests"]
    board = board.merge(_replay_columns(validation), on=KEYS, how="left")
    board["method"] = [_recommended(r) for _, r in board.iterrows()]
    for col in ("energy_per_request_j", "wh_per_1k_output_tokens"):
        board[col] = [r[f"{r['method']}_{col}"] for _, r in board.iterrows()]
    board["rank"] = board.groupby("workload")["energy_per_request_j"].rank(method="min").astype("Int64")
    board["flags"] = ["; ".join(row_flags(r)) for _, r in board.iterrows()]
    first = ["workload", "rank", *KEYS[1:], "method", "energy_per_request_j", "wh_per_1k_output_tokens"]
    rest = [c for c in board.columns if c not in first]
    return board[first + rest].sort_values(["workload", "rank"], kind="stable").reset_index(drop=True)


def outside_interval(error_pct: float, interval_pct: float) -> float:
    """How many percentage points an error's magnitude lies beyond its interval (0 within it; NaN
    where either is unknown)."""
    if pd.isna(error_pct) or pd.isna(interval_pct):
        return math.nan
    return max(abs(error_pct) - interval_pct, 0.0)


def row_flags(r) -> list[str]:
    """Short flags of one leaderboard row (its CSV column ``flags``)."""
    out = []
    if CPU_ESTIMATE in str(r["energy_source"]):
        out.append("cpu-time estimate, not a power meter")
    if r["n_excluded"] > 0:
        out.append(f"{100 * r['excluded_request_share']:.1f} % of requests "
                   f"({100 * r['excluded_token_share']:.1f} % of tokens) left out")
    for method in METHODS:
        beyond = outside_interval(r[f"{method}_replay_error_pct"], r[f"{method}_interval_pct"])
        if beyond > 0:
            out.append(f"{method} {r[f'{method}_replay_error_pct']:+.0f} % against its replay, "
                       f"{beyond:.0f} points beyond its ±{r[f'{method}_interval_pct']:.0f} % interval")
    return out


def worst_errors(validation: pd.DataFrame | None) -> pd.DataFrame:
    """Per stack and method, the replay with the largest |error|: its workload, error, interval, and
    how far beyond the interval it lies."""
    rows = []
    if validation is None or validation.empty:
        return pd.DataFrame(columns=[*KEYS[1:], "method", "workload", "error_pct", "interval_pct", "beyond_pct"])
    for method, (err, interval) in ERROR_COLUMNS.items():
        if err not in validation:
            continue
        known = validation[validation[err].notna()]
        for _, part in known.groupby(KEYS[1:]):
            w = part.loc[part[err].abs().idxmax()]
            iv = w.get(interval, math.nan)
            rows.append({**{k: w[k] for k in KEYS[1:]}, "method": method, "workload": w["workload"],
                         "error_pct": w[err], "interval_pct": iv, "beyond_pct": outside_interval(w[err], iv)})
    return pd.DataFrame(rows)


def error_flags(validation: pd.DataFrame | None) -> list[str]:
    """A flag for every stack and method with a replay error beyond its interval (the largest excess)."""
    if validation is None or validation.empty:
        return []
    out = []
    for method, (err, interval) in ERROR_COLUMNS.items():
        if err not in validation or interval not in validation:
            continue
        v = validation.assign(beyond=[outside_interval(e, i) for e, i in zip(validation[err], validation[interval])])
        v = v[v["beyond"] > 0]
        for _, part in v.groupby(KEYS[1:]):
            w = part.loc[part["beyond"].idxmax()]
            others = len(part) - 1
            more = f"; {others} more workload{'s' * (others > 1)} beyond too" if others else ""
            out.append(f"the {method} estimate is {abs(w[err]):.0f} % {'above' if w[err] > 0 else 'below'} its "
                       f"replay for {stack_name(w)} on {w['workload']}, {w['beyond']:.0f} points beyond the "
                       f"±{w[interval]:.0f} % that noise allows{more}: do not use the {method} figure for this stack")
    return out


def validation_notes(validation: pd.DataFrame | None) -> list[str]:
    """Flags the replay validation writes in words: a model term no measured point supports, a replay
    without control points, a sample a method could not estimate."""
    if validation is None or validation.empty:
        return []
    out = []
    for col, what in (("model_flag", "energy model"), ("estimate_note", "binned estimate"),
                      ("interval_note", "interval")):
        for _, r in validation[validation.get(col, pd.Series("", index=validation.index)).fillna("") != ""].iterrows():
            out.append(f"{what} of {stack_name(r)} on {r['workload']}: {r[col]}")
    return out


def flags(board: pd.DataFrame, bins: dict[str, dict], validation: pd.DataFrame | None,
          left_out: pd.DataFrame | None = None) -> list[str]:
    """Everything a reader should not trust, in words: CPU-time energy, requests left out, replay
    errors beyond their intervals, stacks never replayed, validation notes, cells left out."""
    out = []
    cpu = board[board["energy_source"].astype(str).str.contains(CPU_ESTIMATE)]
    if len(cpu):
        stacks = sorted({stack_name(r) for _, r in cpu.iterrows()})
        out.append(f"energy is a CPU-time estimate, not a power meter (energy_source {CPU_ESTIMATE}), for "
                   f"{len(stacks)} of {board[KEYS[1:]].drop_duplicates().shape[0]} stacks: {', '.join(stacks)}")
    out += [excluded_message(w, s) for w, s in bins.items() if s.get("n_excluded")]
    out += error_flags(validation)
    unreplayed = board[board[[f"{m}_systematic_error_pct" for m in METHODS]].isna().all(axis=1)]
    if len(unreplayed):
        stacks = sorted({stack_name(r) for _, r in unreplayed.iterrows()})
        out.append(f"never checked against a metered replay, so their error is unknown: {', '.join(stacks)}")
    out += validation_notes(validation)
    if left_out is not None:
        out += [f"{stack_name(r)} left out of {r['workload']}: {r['reason']}" for _, r in left_out.iterrows()]
    return out


def verdict_counts(findings: pd.DataFrame) -> dict[str, int]:
    """How many findings got each verdict (every verdict named, zero included)."""
    counts = findings["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


def _num(x: float, fmt: str = ".3g") -> str:
    return "--" if pd.isna(x) else f"{x:{fmt}}"


def _best_lines(board: pd.DataFrame) -> list[str]:
    lines = []
    for workload, part in board.groupby("workload", sort=False):
        ranked = part.dropna(subset=["energy_per_request_j"])
        if ranked.empty:
            lines.append(f"- {workload}: no estimate")
            continue
        b = ranked.iloc[0]
        lines.append(f"- {workload}: {stack_name(b)}, {_num(b['energy_per_request_j'])} J per request, "
                     f"{_num(b['wh_per_1k_output_tokens'])} Wh per 1,000 output tokens ({b['method']} estimate"
                     f"{', flagged' if b['flags'] else ''})")
    return lines


def _table_lines(board: pd.DataFrame) -> list[str]:
    lines = ["| workload | # | stack | J/request (binned / model) | Wh/1k out tokens (binned / model) | "
             "left out | replay error % (binned / model) |", "|---|---|---|---|---|---|---|"]
    for _, r in board.iterrows():
        left = f"{int(r['n_excluded']):,} ({100 * r['excluded_request_share']:.1f} %)" if r["n_excluded"] else "0"
        errs = " / ".join(_num(r[f"{m}_replay_error_pct"], "+.0f") for m in METHODS)
        lines.append(f"| {r['workload']} | {_num(r['rank'], 'd')} | {stack_name(r)} | "
                     + " / ".join(_num(r[f"{m}_energy_per_request_j"]) for m in METHODS) + " | "
                     + " / ".join(_num(r[f"{m}_wh_per_1k_output_tokens"]) for m in METHODS)
                     + f" | {left} | {errs} |")
    return lines


def _worst_lines(worst: pd.DataFrame) -> list[str]:
    if worst.empty:
        return ["No stack was replayed (replay.enabled is off): every estimate's error is unknown."]
    lines = ["| stack | method | worst error % | workload | interval ±% | beyond |", "|---|---|---|---|---|---|"]
    for _, w in worst.iterrows():
        beyond = _num(w["beyond_pct"], ".0f")
        beyond = "within" if beyond == "0" else (f"**{beyond} points**" if beyond != "--" else "--")
        lines.append(f"| {stack_name(w)} ({w['hardware']}) | {w['method']} | {_num(w['error_pct'], '+.1f')} | "
                     f"{w['workload']} | {_num(w['interval_pct'], '.1f')} | {beyond} |")
    return lines


def summary_markdown(board: pd.DataFrame, flag_lines: list[str], verdicts: dict[str, int],
                     worst: pd.DataFrame) -> str:
    """paper/summary.md: the headline first (its first lines are the terminal's short form)."""
    hardware = ", ".join(sorted(board["hardware"].unique()))
    n_stacks = board[KEYS[1:]].drop_duplicates().shape[0]
    lines = [f"# Summary of this run ({hardware})", "",
             f"{board['workload'].nunique()} workloads x {n_stacks} stacks. Findings of the paper: "
             + ", ".join(f"{n} {v}" for v, n in verdicts.items()) + " (paper/findings.md).", "",
             "Least energy per request of each workload (the method with the smaller replay error):",
             *_best_lines(board), "", f"## Read before using these numbers ({len(flag_lines)})", "",
             *(f"- {f}" for f in flag_lines or ["nothing flagged"]), "",
             "## Every workload and stack", "",
             "Energy per request and Wh per 1,000 output tokens (the requests' real output tokens) of both "
             "estimates, over the requests within the top bin edges; # ranks the stacks of a workload by the "
             "recommended method. Full rows: paper/tables/leaderboard.csv; Table 4: "
             "paper/tables/table4_estimates.csv.", "", *_table_lines(board), "",
             "## Worst replay error of each method", "",
             "Per stack, the largest |error| of each estimate against a metered replay of a sample, with the "
             "interval that noise alone allows (results/validation/).", "", *_worst_lines(worst), ""]
    return "\n".join(lines)


def short_form(path: str | Path, n_lines: int = SHORT_LINES) -> str:
    """The first ``n_lines`` of the summary, and where the rest is (empty when there is no summary)."""
    path = Path(path)
    if not path.is_file():
        return ""
    lines = path.read_text(encoding="utf-8").splitlines()
    more = f"... {len(lines) - n_lines} more lines in {path}" if len(lines) > n_lines else f"(full: {path})"
    return "\n".join([*lines[:n_lines], more])


def summarize(estimates: pd.DataFrame, bins: dict[str, dict], profiles: dict[str, pd.DataFrame],
              validation: pd.DataFrame | None, findings: pd.DataFrame,
              left_out: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """The leaderboard (paper/tables/leaderboard.csv) and the summary page (paper/summary.md) of a run."""
    tokens = {w: mean_output_tokens(p, bins.get(w)) for w, p in profiles.items()}
    board = leaderboard(estimates, bins, tokens, validation)
    flag_lines = flags(board, bins, validation, left_out)
    return board, summary_markdown(board, flag_lines, verdict_counts(findings), worst_errors(validation))
