"""Paper figures: one style, plotted data written beside every figure, estimated energy drawn hollow.

Each figure is written as PDF and PNG, its plotted data as CSV, and a LaTeX fragment
(``<name>.tex``) whose caption names the hardware, models and energy source, for ``paper/main.tex``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path, write_text  # noqa: E402

log = logging.getLogger(__name__)

PALETTE = "colorblind"
ESTIMATED = "cpu-estimate"
SINGLE_COLUMN_IN = 3.4


def setup_style() -> None:
    """Seaborn paper context, colour-blind-safe palette, sizes readable at one column's width."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 150, "savefig.bbox": "tight", "pdf.fonttype": 42})


def _source_note(sources) -> str:
    sources = sorted(set(sources))
    if ESTIMATED in sources:
        return ("Energy is a CPU-time $\\times$ per-core-power estimate (\\texttt{cpu-estimate}), not a "
                "measurement; it is drawn with hollow markers and hatched bars.")
    return "Energy measured with " + ", ".join(f"\\texttt{{{s}}}" for s in sources) + "."


def _tex_escape(s: str) -> str:
    return str(s).replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def save(fig, data: pd.DataFrame, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """Write ``name``.pdf/.png/.csv/.tex into ``out_dir`` (each complete or absent)."""
    out_dir = Path(out_dir)
    paths = []
    for ext in ("pdf", "png"):
        p = out_dir / f"{name}.{ext}"
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext)
        paths.append(p)
    plt.close(fig)
    with atomic_path(out_dir / f"{name}.csv") as tmp:
        data.to_csv(tmp, index=False)
    tex = ("\\begin{figure}[t]\n  \\centering\n"
           f"  \\includegraphics[width=\\columnwidth]{{figures/{name}.pdf}}\n"
           f"  \\caption{{{caption}}}\n  \\label{{fig:{name}}}\n\\end{{figure}}\n")
    write_text(tex, out_dir / f"{name}.tex")
    return paths + [out_dir / f"{name}.csv", out_dir / f"{name}.tex"]


def _cells_note(df: pd.DataFrame) -> str:
    hw = ", ".join(sorted(df["hardware"].unique()))
    models = ", ".join(sorted(df["model"].unique()))
    return f"Hardware: \\texttt{{{_tex_escape(hw)}}}; model: \\texttt{{{_tex_escape(models)}}}."


def fig_workload_energy(estimates: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Figure 1: energy of each whole workload: the FLOPs ideal, then one bar per framework stack."""
    setup_style()
    cols = ["workload", "hardware", "model", "variant", "decoding", "energy_j", "energy_source", "n_included",
            "n_excluded"]
    data = estimates[cols].copy()
    if "ideal_energy_j" in estimates:
        ideal = (estimates.dropna(subset=["ideal_energy_j"])
                 .drop_duplicates(["workload", "hardware", "model"])
                 .assign(variant="ideal (FLOPs x TDP / peak)", energy_j=lambda d: d["ideal_energy_j"],
                         energy_source="flops-ideal", decoding=""))
        data = pd.concat([ideal[cols], data], ignore_index=True)
    data["energy_kj"] = data["energy_j"] / 1e3
    hws = sorted(data["hardware"].unique())
    fig, axes = plt.subplots(1, len(hws), figsize=(SINGLE_COLUMN_IN * len(hws), 2.6), squeeze=False)
    for ax, hw in zip(axes[0], hws):
        sub = data[data["hardware"] == hw]
        sns.barplot(sub, x="workload", y="energy_kj", hue="variant", ax=ax, errorbar=None)
        for bar_container, (_, grp) in zip(ax.containers, sub.groupby("variant", sort=False)):
            if (grp["energy_source"] == ESTIMATED).any():
                for bar in bar_container:
                    bar.set_hatch("///")
                    bar.set_edgecolor("black")
        ax.set_yscale("log")
        ax.set(title=hw, xlabel="", ylabel="workload energy (kJ)")
        ax.tick_params(axis="x", rotation=20)
        ax.legend(title="", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    caption = ("Energy to serve each whole workload: the ideal (FLOPs $\\times$ TDP / dense peak FLOPS) "
               "and each stack's estimate from binned requests and measured batch energies. "
               + _cells_note(data) + " " + _source_note(data["energy_source"][data["energy_source"] != "flops-ideal"])
               + (f" Grid points left out after failing validation: {int(estimates['n_invalid_points'].sum())}."
                  if "n_invalid_points" in estimates else ""))
    return save(fig, data.drop(columns="energy_kj"), out_dir, "fig1_workload_energy", caption)


def fig_prefill_decode(measurements: pd.DataFrame, fixed_input: int, fixed_output: int,
                       out_dir: str | Path) -> list[Path]:
    """Figure 2: prefill energy vs input length and decode energy vs output length, per batch size, log-log."""
    setup_style()
    m = measurements[measurements["status"] == "ok"] if "status" in measurements else measurements
    n_invalid = 0
    if "valid" in m:
        n_invalid = int((~m["valid"]).sum())
        m = m[m["valid"]]
    pre = m[m["output_len"] == fixed_output].assign(panel="prefill", x=lambda d: d["input_len"],
                                                      y=lambda d: d["prefill_energy_j"])
    dec = m[m["input_len"] == fixed_input].assign(panel="decode", x=lambda d: d["output_len"],
                                                    y=lambda d: d["decode_energy_j"])
    long = pd.concat([pre, dec])
    data = (long.groupby(["panel", "hardware", "model", "variant", "batch_size", "x", "energy_source"])["y"]
            .agg(energy_mean_j="mean", energy_std_j="std", n_repeats="count").reset_index())
    data["energy_std_j"] = data["energy_std_j"].fillna(0.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * SINGLE_COLUMN_IN, 2.6))
    colours = dict(zip(sorted(data["batch_size"].unique()), sns.color_palette(PALETTE)))
    styles = dict(zip(sorted(data["variant"].unique()), ["-", "--", ":", "-."]))
    for ax, panel, xlabel in ((axes[0], "prefill", f"input length (tokens), output {fixed_output}"),
                              (axes[1], "decode", f"output length (tokens), input {fixed_input}")):
        sub = data[(data["panel"] == panel) & (data["energy_mean_j"] > 0)]
        for (hw, variant, bs, src), grp in sub.groupby(["hardware", "variant", "batch_size", "energy_source"]):
            grp = grp.sort_values("x")
            hollow = src == ESTIMATED
            ax.errorbar(grp["x"], grp["energy_mean_j"], yerr=grp["energy_std_j"], color=colours[bs],
                        linestyle=styles[variant], marker="o", markersize=4,
                        markerfacecolor="none" if hollow else colours[bs],
                        label=f"{variant}, batch {bs}" + (f" ({hw})" if data["hardware"].nunique() > 1 else ""))
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=f"{panel} energy (J)", title=panel)
    axes[1].legend(fontsize="x-small", loc="best")
    caption = ("Prefill energy against input length and decode energy (full run minus a one-token run) "
               "against output length, per batch size; mean over repeats with their standard deviation. "
               + _cells_note(long) + " " + _source_note(data["energy_source"])
               + f" {n_invalid} measurement row(s) failed validation and are left out.")
    return save(fig, data, out_dir, "fig2_prefill_decode", caption)


def fig_replay_validation(validation: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Error of the binned estimate against a real replay of the same sampled requests, per stack."""
    setup_style()
    data = validation.copy()
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, 2.4))
    sns.barplot(data, x="workload", y="error_pct", hue="variant", ax=ax, errorbar=None)
    if (data["energy_source"] == ESTIMATED).any():
        for container in ax.containers:
            for bar in container:
                bar.set_hatch("///")
                bar.set_edgecolor("black")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="", ylabel="estimate vs replay (%)")
    ax.tick_params(axis="x", rotation=20)
    ax.legend(title="", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    n = ", ".join(f"{w}: {k}" for w, k in data.groupby("workload")["n_requests"].first().items())
    caption = ("Binned estimate ($\\\\sum N/B \\\\times E_{batch}$) against the metered replay of the same seeded "
               f"sample of requests served with their true lengths (requests: {_tex_escape(n)}); positive means "
               "the estimate is higher. " + _cells_note(data) + " " + _source_note(data["energy_source"]))
    return save(fig, data, out_dir, "fig_replay_validation", caption)


def fig_binning_cdfs(profiles: dict[str, pd.DataFrame], input_edges: list[int], output_edges: list[int],
                     out_dir: str | Path) -> list[Path]:
    """Figure 7: CDFs of real and binned input and output lengths per workload (requests within the edges)."""
    import numpy as np

    from .binning import bin_edges_ceiling

    setup_style()
    rows = []
    for w, df in profiles.items():
        inside = df[(df["input_tokens"] <= input_edges[-1]) & (df["output_tokens"] <= output_edges[-1])]
        for axis, edges in (("input", input_edges), ("output", output_edges)):
            real = np.sort(inside[f"{axis}_tokens"].to_numpy())
            binned = np.sort(bin_edges_ceiling(real, edges))
            q = np.linspace(0, 1, min(len(real), 200))
            for kind, values in (("real", real), ("binned", binned)):
                for qq, v in zip(q, np.quantile(values, q)):
                    rows.append({"workload": w, "axis": axis, "kind": kind, "quantile": qq, "tokens": v})
    data = pd.DataFrame(rows)
    names = list(profiles)
    from matplotlib.ticker import LogLocator, NullFormatter

    fig, axes = plt.subplots(2, len(names), figsize=(1.7 * len(names) + 1, 4.2), squeeze=False,
                             constrained_layout=True)
    for col, w in enumerate(names):
        for row, axis in enumerate(("input", "output")):
            ax = axes[row][col]
            for kind, style in (("real", "-"), ("binned", "--")):
                sub = data[(data["workload"] == w) & (data["axis"] == axis) & (data["kind"] == kind)]
                ax.plot(sub["tokens"], sub["quantile"], style, label=kind, drawstyle="steps-post")
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(labelsize="x-small")
            ax.set_title(w if row == 0 else "", fontsize="small")
            ax.set_xlabel(f"{axis} tokens", fontsize="small")
            if col == 0:
                ax.set_ylabel("CDF")
    axes[0][-1].legend(fontsize="x-small")
    caption = ("Cumulative distribution of real and binned input (top) and output (bottom) lengths of each "
               "workload's requests within the largest edges; binning maps each to the smallest edge at or "
               "above it.")
    return save(fig, data, out_dir, "fig7_binning_cdfs", caption)


def fig_distortion(profile: pd.DataFrame, input_edges: list[int], output_edges: list[int], workload: str,
                   png_path: str | Path) -> pd.DataFrame:
    """Per-request binned / real tokens, input and output, for one workload (next to its bin stats).

    Writes the PNG and a CSV beside it; returns the plotted table.
    """
    import numpy as np

    from .binning import bin_edges_ceiling

    setup_style()
    inside = profile[(profile["input_tokens"] <= input_edges[-1]) & (profile["output_tokens"] <= output_edges[-1])
                     & (profile["input_tokens"] > 0) & (profile["output_tokens"] > 0)]
    data = pd.DataFrame({
        "input_tokens": inside["input_tokens"].to_numpy(), "output_tokens": inside["output_tokens"].to_numpy(),
        "input_ratio": bin_edges_ceiling(inside["input_tokens"].to_numpy(), input_edges) / inside["input_tokens"],
        "output_ratio": bin_edges_ceiling(inside["output_tokens"].to_numpy(), output_edges) / inside["output_tokens"],
    })
    fig, axes = plt.subplots(1, 2, figsize=(2 * SINGLE_COLUMN_IN * 0.8, 2.2), sharey=True)
    for ax, axis in zip(axes, ("input", "output")):
        r = data[f"{axis}_ratio"]
        bins = np.logspace(0, np.log10(max(r.max(), 1.01)), 30)
        ax.hist(r, bins=bins)
        ax.set(xscale="log", xlabel=f"binned / real {axis} tokens",
               title=f"{axis}: total x{data[f'{axis}_tokens'].pipe(lambda s: (r * s).sum() / s.sum()):.2f}")
    axes[0].set_ylabel("requests")
    fig.suptitle(workload, fontsize="small")
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    with atomic_path(png_path.with_suffix(".csv")) as tmp:
        data.to_csv(tmp, index=False)
    return data
