"""Paper tables as LaTeX (booktabs) with their rows as CSV, each written complete or absent.

A table function takes its two paths as one :class:`TableFiles`; which function writes which table
from which inputs: ``llm_energy.paper.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llm_energy.estimates.estimate import savings as savings_of
from llm_energy.online.frontier import latency_targets as meet
from llm_energy.paper.tex import tex_escape
from llm_energy.pipeline.io import atomic_path, write_text


@dataclass(frozen=True)
class TableFiles:
    """Where one table is written: the LaTeX (booktabs) that ``paper/main.tex`` inputs, and its rows as CSV."""

    tex: Path
    csv: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "tex", Path(self.tex))
        object.__setattr__(self, "csv", Path(self.csv))


def _write(tex: str, rows: list[dict], files: TableFiles) -> str:
    write_text(tex, files.tex)
    with atomic_path(files.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return tex


def _table(body_rows: list[str], columns: str, header: str, caption: str, label: str) -> str:
    return ("\\begin{table}[t]\n  \\centering\\small\n"
            f"  \\begin{{tabular}}{{{columns}}}\n    \\toprule\n    {header} \\\\\n    \\midrule\n"
            + "".join(f"    {r} \\\\\n" for r in body_rows)
            + "    \\bottomrule\n  \\end{tabular}\n"
            f"  \\caption{{{caption}}}\n  \\label{{tab:{label}}}\n\\end{{table}}\n")


def table_workloads(stats: dict[str, dict], files: TableFiles) -> str:
    """Table 1: per request trace, request count and mean ± std / median / p99 of input and output tokens."""
    rows, csv_rows = [], []
    for name, s in stats.items():
        csv_rows.append({"workload": name, "n_requests": s["n_requests"],
                         **{f"{axis}_{k}": v for axis in ("input_tokens", "output_tokens")
                            for k, v in s[axis].items()}})
        i, o = s["input_tokens"], s["output_tokens"]
        rows.append(f"{tex_escape(name)} & {s['n_requests']:,} & "
                    f"{i['mean']:.2f} $\\pm$ {i['std']:.2f} / {i['median']:g} / {i['p99']:g} & "
                    f"{o['mean']:.2f} $\\pm$ {o['std']:.2f} / {o['median']:g} / {o['p99']:g}")
    tex = _table(rows, "lrll", "workload & requests & input mean $\\pm$ std / median / p99 & "
                 "output mean $\\pm$ std / median / p99",
                 "Request statistics of each trace (tokens; sample standard deviation; p99 by linear "
                 "interpolation).", "workloads")
    return _write(tex, csv_rows, files)


def table_tasks(stats: dict[str, dict], files: TableFiles) -> str:
    """Table 2: per classical task, examples, input mean ± std and max, and the fixed output length."""
    rows, csv_rows = [], []
    for name, s in stats.items():
        i, o = s["input_tokens"], s["output_tokens"]
        rows.append(f"{tex_escape(name)} & {s['n_requests']:,} & {i['mean']:.2f} $\\pm$ {i['std']:.2f} & "
                    f"{i['max']:g} & {o['max']:g}")
        csv_rows.append({"task": name, "n_examples": s["n_requests"], "input_mean": i["mean"], "input_std": i["std"],
                         "input_max": i["max"], "output_tokens": o["max"], "tokenizer": s.get("tokenizer", "")})
    tex = _table(rows, "lrrrr", "task & examples & input mean $\\pm$ std & input max & output",
                 "Classical NLP tasks: prompt lengths in the measured model's tokens (templates in "
                 "config.yaml) and the fixed output length.", "tasks")
    return _write(tex, csv_rows, files)


def table_bins(bins: dict[str, dict], files: TableFiles) -> str:
    """Table 3: how binning treats each workload: included and excluded requests, token inflation."""
    rows, csv_rows = [], []
    for name, s in bins.items():
        rows.append(f"{tex_escape(name)} & {s['n_included']:,} & {s['n_excluded']:,} & "
                    f"{100 * s['excluded_token_share']:.2f}\\% & {s['input_inflation']:.3f} & "
                    f"{s['output_inflation']:.3f}")
        csv_rows.append({"workload": name, **{k: v for k, v in s.items() if not isinstance(v, list)}})
    edges = next(iter(bins.values()))
    tex = _table(rows, "lrrrrr", "workload & included & excluded & excluded tokens & input inflation & "
                 "output inflation",
                 "Binning: requests map to the smallest edge at or above their length (inputs "
                 f"{', '.join(map(str, edges['input_edges']))}; outputs {', '.join(map(str, edges['output_edges']))}); "
                 "longer ones are excluded. Inflation is binned tokens over real tokens of the included "
                 "requests.", "bins")
    return _write(tex, csv_rows, files)


def _pct(x: float) -> str:
    return "--" if pd.isna(x) else f"{x:.2f}\\%"


KEYS = ["workload", "hardware", "model", "variant", "decoding"]
METHODS = ("binned", "model")
# Table 4's columns of each method, prefixed binned_ / model_ in its CSV.
PER_METHOD = ["energy_j", "systematic_error_pct", "systematic_error_note", "ideal_energy_j", "pct_above_ideal",
              "pct_above_ideal_sparse", "n_included", "n_excluded", "n_extrapolated", "facility_energy_kwh",
              "co2e_kg", "cost", "facility_energy_kwh_per_million_requests", "co2e_kg_per_million_requests",
              "cost_per_million_requests", "coverage", "whole_trace_energy_j", "whole_trace_n_requests",
              "whole_trace_ideal_energy_j"]
SHARED = ["energy_source", "pue", "grid_intensity_g_per_kwh", "grid_intensity_source", "currency"]


def _saving_columns(est: pd.DataFrame, savings: pd.DataFrame) -> pd.DataFrame:
    """Per optimized stack: its baseline and each method's saving (the binned one from savings.parquet;
    the model's recomputed from the estimates for the same comparisons)."""
    comparisons = savings[["baseline", "optimized"]].drop_duplicates().to_dict("records") if len(savings) else []
    model = savings_of(est, comparisons, method="model") if "method" in est else savings.iloc[:0]
    keys = ["workload", "hardware", "model", "decoding", "optimized"]
    out = savings[keys + ["baseline", "saving_pct"]].rename(columns={"saving_pct": "binned_saving_pct"})
    out = out.merge(model[keys + ["baseline", "saving_pct"]].rename(columns={"saving_pct": "model_saving_pct"}),
                    on=keys + ["baseline"], how="outer")
    out = out.drop_duplicates(keys, keep="last").rename(columns={"optimized": "variant", "baseline": "saving_baseline"})
    return out


def estimate_rows(estimates: pd.DataFrame, savings: pd.DataFrame) -> pd.DataFrame:
    """Table 4's rows: one per workload and stack, each method's columns side by side (``binned_*``,
    ``model_*``: energy, systematic error, ideal, percent above it, carbon and cost) and each method's
    saving of the optimized stack over its baseline."""
    est = estimates if "method" in estimates else estimates.assign(method="binned")
    wide = est[KEYS].drop_duplicates()
    for method in METHODS:
        part = est[est["method"] == method].reindex(columns=KEYS + PER_METHOD)
        wide = wide.merge(part.rename(columns={c: f"{method}_{c}" for c in PER_METHOD}), on=KEYS, how="left")
    first = est.assign(m=est["method"] != "binned").sort_values("m", kind="stable").drop_duplicates(KEYS)
    wide = wide.merge(first.reindex(columns=KEYS + SHARED), on=KEYS, how="left")
    wide = wide.merge(_saving_columns(est, savings), on=KEYS, how="left")
    return wide.sort_values(KEYS).reset_index(drop=True)


def _g(x: float) -> str:
    return "--" if pd.isna(x) else f"{x:.3g}"


def _pm(energy_j: float, systematic_pct: float) -> str:
    """kJ with the method's systematic error in percent; ``?`` where it is unknown (no replay)."""
    if pd.isna(energy_j):
        return "--"
    return f"{energy_j / 1e3:.3g} $\\pm$ " + ("?" if pd.isna(systematic_pct) else f"{systematic_pct:.0f}\\%")


def _pair(a: float, b: float, fmt: str = ".0f") -> str:
    return " / ".join("--" if pd.isna(x) else f"{x:{fmt}}\\%" for x in (a, b))


def _estimate_tex_row(r, with_hardware: bool) -> str:
    stack = tex_escape(r.variant if r.decoding in ("greedy", "") else f"{r.variant} / {r.decoding}")
    stack += "$^\\dagger$" if "cpu-estimate" in str(r.energy_source) else ""
    where = f"{tex_escape(r.hardware)}, {tex_escape(r.model)} & " if with_hardware else ""
    carbon = " & ".join(f"{_g(getattr(r, f'binned_{c}'))} / {_g(getattr(r, f'binned_{c}_per_million_requests'))}"
                        for c in ("facility_energy_kwh", "co2e_kg", "cost"))
    return (f"{tex_escape(r.workload)} & {where}{stack} & {_pm(r.binned_energy_j, r.binned_systematic_error_pct)} & "
            f"{_pm(r.model_energy_j, r.model_systematic_error_pct)} & {_g(r.model_whole_trace_energy_j / 1e3)} & "
            f"{_g(r.binned_ideal_energy_j / 1e3)} & "
            f"{_pair(r.binned_pct_above_ideal, r.model_pct_above_ideal)} & "
            f"{_pair(r.binned_saving_pct, r.model_saving_pct, '.1f')} & {carbon}")


def _why_no_replay(rows: pd.DataFrame) -> str:
    """The reason(s) that apply to the stacks shown with ``?`` (the estimate's systematic_error_note)."""
    notes = []
    for method in METHODS:
        col = f"{method}_systematic_error_note"
        if col in rows:
            unknown = rows[f"{method}_systematic_error_pct"].isna() & rows[f"{method}_energy_j"].notna()
            notes += [str(n).split(": ", 1)[-1] for n in rows.loc[unknown, col].dropna() if ": " in str(n)]
    return f": {tex_escape('; '.join(dict.fromkeys(notes)))}" if notes else ""


def _estimates_caption(rows: pd.DataFrame, with_hardware: bool) -> str:
    where = "" if with_hardware else (f" Hardware \\texttt{{{tex_escape(rows['hardware'].iloc[0])}}}, model "
                                      f"\\texttt{{{tex_escape(rows['model'].iloc[0])}}}.")
    pue = ", ".join(sorted({f"{x:g}" for x in rows["pue"].dropna()})) or "--"
    grid = ", ".join(sorted({f"{x:.0f}" for x in rows["grid_intensity_g_per_kwh"].dropna()})) or "--"
    currency = ", ".join(sorted(set(rows["currency"].dropna()))) or "--"
    return ("Estimated energy to serve each workload per stack, both methods on the same requests (those "
            "within the largest bin, as the paper's method needs; the CSV's coverage and n\\_excluded say "
            "which): the paper's binned estimate, $\\sum_{bins} N/B \\times E_{batch}$, and the cell's "
            "energy model served at the requests' true lengths, each $\\pm$ its systematic error (its largest "
            "absolute error against the metered replays of that stack; ? where the stack has no replay"
            f"{_why_no_replay(rows)}). "
            "Whole trace: the energy model over every request of the workload (past the measured lengths "
            "extrapolated). Ideal: TDP / dense peak FLOPS $\\times$ FLOPs of the binned lengths (the model's "
            "own, of the true lengths, is in the CSV). Above ideal (each method against its own ideal) and "
            "the saving of the optimized stack over its baseline: binned / model. Facility energy (kWh, PUE "
            f"{pue}), carbon (kgCO2e at {grid} g/kWh) and cost ({tex_escape(currency)}) of the binned estimate, "
            "in total / per million requests; the CSV holds both methods' and the with-sparsity ideal. "
            "$^\\dagger$ Energy estimated from CPU time (\\texttt{cpu-estimate}), not measured." + where)


def table_estimates(estimates: pd.DataFrame, savings: pd.DataFrame, files: TableFiles) -> str:
    """Table 4: per workload and stack, the binned and the model estimate (each with its systematic
    error), percent above the FLOPs ideal, the optimized stack's saving, and carbon and cost."""
    rows = estimate_rows(estimates, savings)
    for col in SHARED:  # older estimates have no carbon columns
        rows[col] = rows[col] if col in rows else float("nan")
    with_hardware = rows[["hardware", "model"]].drop_duplicates().shape[0] > 1
    body = [_estimate_tex_row(r, with_hardware) for r in rows.itertuples()]
    columns = "l" + ("l" if with_hardware else "") + "lrrrrrrrrr"
    currency = set(rows["currency"].dropna())
    header = ("workload & " + ("hardware, model & " if with_hardware else "") + "stack & binned (kJ) & model (kJ) & "
              "whole trace (kJ) & ideal (kJ) & above ideal & saving & kWh & kgCO2e & cost"
              + (f" ({tex_escape(currency.pop())})" if len(currency) == 1 else ""))
    tex = _table(body, columns, header, _estimates_caption(rows, with_hardware), "estimates")
    return _write(tex, rows.to_dict("records"), files)


NO_SERVING = "no serving rate sweep was measured (vllm-online cells with config online.rates)"


def _target_label(metric: str, limit: float) -> str:
    """``tpot_p90_s``, 0.05 -> ``TPOT p90 $\\le$ 0.05 s``; a name that is no latency column as it is."""
    parts = str(metric).split("_")
    if len(parts) == 3 and parts[2] == "s":
        return f"{parts[0].upper()} {parts[1]} $\\le$ {limit:g} s"
    return f"{tex_escape(metric)} $\\le$ {limit:g}"


def _target_tex_row(r) -> str:
    lat = "--" if pd.isna(r["best_latency"]) else f"{r['best_latency']:.3g} s"
    if r["result"] != "met":
        result = tex_escape(r["result"]) + ("" if r["result"] != "not met" else f" (best {lat})")
        return f"{tex_escape(r['workload'])} & {_target_label(r['target'], r['limit'])} & {result} & -- & -- & {lat}"
    setting = (f"{tex_escape(r['hardware'])}, {tex_escape(r['model'])}, {tex_escape(r['variant'])}, "
               f"{r['rate_per_s']:g} req/s, batch {r['batch_size']:.0f}")
    return (f"{tex_escape(r['workload'])} & {_target_label(r['target'], r['limit'])} & met ({r['latency']:.3g} s) & "
            f"{r['energy_per_request_j']:.3g} & {setting} & {lat}")


def latency_target_rows(serving: pd.DataFrame, latency_targets: dict) -> list[dict]:
    """Per workload of the rate sweep and per target, :func:`llm_energy.online.frontier.latency_targets`; a
    row that says so when there is no sweep or no target."""
    blank = {"workload": "", "target": "", "limit": float("nan"), "result": "", "energy_per_request_j": float("nan"),
             "best_latency": float("nan"), "note": ""}
    if not latency_targets:
        return [{**blank, "result": "no targets", "note": "no latency target set (config online.latency_targets)"}]
    if serving is None or serving.empty:
        return [{**blank, "target": t, "limit": float(v), "result": "no data", "note": NO_SERVING}
                for t, v in latency_targets.items()]
    workloads = serving["workload"] if "workload" in serving else pd.Series("", index=serving.index)
    return [{"workload": w, **r} for w, grp in serving.groupby(workloads, sort=True)
            for r in meet(grp, latency_targets)]


def table_latency_targets(serving: pd.DataFrame, latency_targets: dict, files: TableFiles) -> str:
    """Per latency target (config ``online.latency_targets``): the least energy per request of the rate
    sweep's settings that meet it and the setting (hardware, model, variant, rate, batch limit), or "not
    met" with the best latency reached."""
    rows = latency_target_rows(serving, latency_targets)
    body = [_target_tex_row({"best_latency": float("nan"), **r}) for r in rows]
    note = rows[0]["note"] if rows[0]["result"] in ("no targets", "no data") else ""
    caption = ("Least energy per request of online serving that meets each latency target: among the settings of "
               "the serving rate sweep (stack, server batch limit, request rate; Poisson arrivals of a seeded "
               "sample of the trace) whose latency percentile is at or below the target, the one with the least energy "
               "per request of its steady-state window. Settings whose window timed out (partial values) do not "
               "count; \"not met\" gives the best latency any setting reached."
               + (f" {tex_escape(note[0].upper() + note[1:])}." if note else ""))
    tex = _table(body, "lllrll", "workload & target & result & J / request & setting & best latency", caption,
                 "latency_targets")
    return _write(tex, rows, files)
