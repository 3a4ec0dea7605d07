"""Paper tables as LaTeX (booktabs) with their rows as CSV, each written complete or absent.

A table function takes its two paths as one :class:`TableFiles`; which function writes which table
from which inputs: ``llm_energy.paper``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .figures import _tex_escape
from .io import atomic_path, write_text


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
        rows.append(f"{_tex_escape(name)} & {s['n_requests']:,} & "
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
        rows.append(f"{_tex_escape(name)} & {s['n_requests']:,} & {i['mean']:.2f} $\\pm$ {i['std']:.2f} & "
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
        rows.append(f"{_tex_escape(name)} & {s['n_included']:,} & {s['n_excluded']:,} & "
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


def table_estimates(estimates: pd.DataFrame, savings: pd.DataFrame, files: TableFiles) -> str:
    """Table 4: workload energy per stack, percent above the FLOPs ideal, and the optimized stack's saving."""
    rows, csv_rows = [], []
    saving = {(r.workload, r.hardware, r.model, r.decoding, r.optimized): r for r in savings.itertuples()}
    for r in estimates.sort_values(["workload", "hardware", "model", "variant", "decoding"]).itertuples():
        s = saving.get((r.workload, r.hardware, r.model, r.decoding, r.variant))
        csv_rows.append({"workload": r.workload, "hardware": r.hardware, "model": r.model, "variant": r.variant,
                         "decoding": r.decoding, "energy_j": r.energy_j, "ideal_energy_j": r.ideal_energy_j,
                         "pct_above_ideal": r.pct_above_ideal, "pct_above_ideal_sparse": r.pct_above_ideal_sparse,
                         "saving_pct": s.saving_pct if s else float("nan"),
                         "saving_baseline": s.baseline if s else "", "n_included": r.n_included,
                         "n_excluded": r.n_excluded, "energy_source": r.energy_source})
        rows.append(f"{_tex_escape(r.workload)} & {_tex_escape(r.hardware)} & {_tex_escape(r.variant)} & "
                    f"{r.energy_j / 1e3:.3f} & {r.ideal_energy_j / 1e3:.4f} & {_pct(r.pct_above_ideal)} & "
                    f"{_pct(r.pct_above_ideal_sparse)} & {_pct(s.saving_pct) if s else '--'} & "
                    f"{r.n_included:,} & {r.n_excluded:,} & \\texttt{{{r.energy_source}}}")
    tex = _table(rows, "lllrrrrrrrl", "workload & hardware & stack & energy (kJ) & ideal (kJ) & above ideal & "
                 "above ideal (sparse peak) & saving & requests & excluded & source",
                 "Estimated energy to serve each workload, $\\sum_{bins} N/B \\times E_{batch}$, against the "
                 "ideal TDP / peak FLOPS $\\times$ FLOPs (dense peak; with-sparsity peak, as the paper's "
                 "A6000 figure, beside it), and the saving of the optimized stack over the baseline. "
                 "Requests above the largest bin are excluded. Energy marked \\texttt{cpu-estimate} is "
                 "estimated from CPU time, not measured.", "estimates")
    return _write(tex, csv_rows, files)
