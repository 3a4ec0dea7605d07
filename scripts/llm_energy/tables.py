"""Paper tables as LaTeX (booktabs), each written complete or absent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .figures import _tex_escape
from .io import write_text


def _table(body_rows: list[str], columns: str, header: str, caption: str, label: str) -> str:
    return ("\\begin{table}[t]\n  \\centering\\small\n"
            f"  \\begin{{tabular}}{{{columns}}}\n    \\toprule\n    {header} \\\\\n    \\midrule\n"
            + "".join(f"    {r} \\\\\n" for r in body_rows)
            + "    \\bottomrule\n  \\end{tabular}\n"
            f"  \\caption{{{caption}}}\n  \\label{{tab:{label}}}\n\\end{{table}}\n")


def table_workloads(stats: dict[str, dict], path: str | Path) -> str:
    """Tables 1-2: per workload, request count and mean ± std / median / p99 of input and output tokens."""
    rows = []
    for name, s in stats.items():
        i, o = s["input_tokens"], s["output_tokens"]
        rows.append(f"{_tex_escape(name)} & {s['n_requests']:,} & "
                    f"{i['mean']:.2f} $\\pm$ {i['std']:.2f} / {i['median']:g} / {i['p99']:g} & "
                    f"{o['mean']:.2f} $\\pm$ {o['std']:.2f} / {o['median']:g} / {o['p99']:g}")
    tex = _table(rows, "lrll", "workload & requests & input mean $\\pm$ std / median / p99 & "
                 "output mean $\\pm$ std / median / p99",
                 "Request statistics of each workload (tokens; p99 by linear interpolation).", "workloads")
    write_text(tex, path)
    return tex


def table_estimates(estimates: pd.DataFrame, path: str | Path) -> str:
    """Table 4 (in part): estimated whole-workload energy per stack, and the requests it covers."""
    rows = []
    for r in estimates.sort_values(["workload", "hardware", "model", "variant", "decoding"]).itertuples():
        rows.append(f"{_tex_escape(r.workload)} & {_tex_escape(r.hardware)} & {_tex_escape(r.variant)} & "
                    f"{r.energy_j / 1e3:.3f} & {r.energy_per_request_j:.3f} & {r.n_included:,} & "
                    f"{r.n_excluded:,} & \\texttt{{{r.energy_source}}}")
    tex = _table(rows, "lllrrrrl", "workload & hardware & stack & energy (kJ) & J/request & requests & "
                 "excluded & source",
                 "Estimated energy to serve each workload: $\\sum_{bins} N/B \\times E_{batch}$. Requests "
                 "above the largest bin are excluded.", "estimates")
    write_text(tex, path)
    return tex
