"""Workload figures: whole-workload energy (Figure 1), classical tasks (Figure 8), binning CDFs
(Figure 7), replay validation, and the per-workload distortion histogram of the bin stage."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path
from .style import (
    ESTIMATED,
    SINGLE_COLUMN_IN,
    FigureFiles,
    cells_note,
    hatch_estimated,
    no_data_figure,
    plt,
    save,
    setup_style,
    sns,
    source_note,
    tex_escape,
)

log = logging.getLogger(__name__)


STACK_KEYS = ["workload", "hardware", "model", "variant", "decoding"]
IDEAL = "ideal (FLOPs x TDP / peak)"


def stack_label(variant: str, decoding: str) -> str:
    """A stack's name in legends: the variant, with the decoding strategy when it is not greedy."""
    return str(variant) if str(decoding) in ("greedy", "", "nan", "None") else f"{variant} / {decoding}"


def workload_spread(by_bin: pd.DataFrame | None) -> pd.DataFrame:
    """Spread of each workload estimate from its bins' spreads over repeats, bins taken as independent:
    sqrt(sum over bins (N/B x std of E_batch)^2)."""
    if by_bin is None or by_bin.empty or "energy_batch_std_j" not in by_bin:
        return pd.DataFrame(columns=STACK_KEYS + ["energy_std_j"])
    b = by_bin.assign(v=(by_bin["n_batches"] * by_bin["energy_batch_std_j"].fillna(0.0)) ** 2)
    out = b.groupby(STACK_KEYS)["v"].sum().pow(0.5).rename("energy_std_j").reset_index()
    return out


def _bars(ax, data: pd.DataFrame, x_order: list, hue_order: list, y: str, yerr: str | None,
          hue_colours: dict) -> None:
    """Grouped bars (x: workload, hue: stack), error bars where given, estimated energy hatched."""
    width = 0.8 / max(len(hue_order), 1)
    for j, hue in enumerate(hue_order):
        sub = data[data["hue"] == hue].set_index("x")
        for i, x in enumerate(x_order):
            if x not in sub.index or pd.isna(sub.loc[x, y]):
                continue
            row = sub.loc[x]
            err = row[yerr] if yerr and yerr in row and not pd.isna(row[yerr]) and row[yerr] > 0 else None
            bars = ax.bar(i - 0.4 + width * (j + 0.5), row[y], width=width, color=hue_colours[hue],
                          yerr=err, capsize=1.5, error_kw={"elinewidth": 0.8},
                          label=hue if i == next(k for k, xx in enumerate(x_order) if xx in sub.index) else None)
            hatch_estimated(bars, row["energy_source"] == ESTIMATED)
    ax.set_xticks(range(len(x_order)))
    ax.set_xticklabels(x_order, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(x_order) - 0.4)


def _workload_panels(data: pd.DataFrame, y: str, yerr: str | None, ylabel: str, x_order: list):
    """One panel per hardware (and model, when several), a shared legend under them."""
    from .style import colours, plain_log_labels, shared_legend

    facets = list(data[["hardware", "model"]].drop_duplicates().itertuples(index=False, name=None))
    hue_order = list(dict.fromkeys(data.sort_values("hue_rank")["hue"]))
    hue_colours = dict(zip(hue_order, colours(len(hue_order))))
    width = max(SINGLE_COLUMN_IN, 0.3 * len(x_order) * max(len(hue_order), 1) / 1.6 + 0.8)
    fig, axes = plt.subplots(1, len(facets), figsize=(width * len(facets), 2.4), squeeze=False, sharey=True)
    many_models = data["model"].nunique() > 1
    for ax, (hw, model) in zip(axes[0], facets):
        sub = data[(data["hardware"] == hw) & (data["model"] == model)]
        _bars(ax, sub, [x for x in x_order if x in set(sub["x"])], hue_order, y, yerr, hue_colours)
        ax.set_yscale("log")
        plain_log_labels(ax)
        ax.set(title=f"{hw}" + (f", {model}" if many_models else ""), xlabel="")
    axes[0][0].set_ylabel(ylabel)
    handles = [plt.Rectangle((0, 0), 1, 1, color=hue_colours[h], label=h) for h in hue_order]
    if (data["energy_source"] == ESTIMATED).any():
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="///",
                                     label="hatched: cpu-estimate"))
    fig.tight_layout()
    shared_legend(fig, handles, ncol=2)
    return fig


def _stack_table(estimates: pd.DataFrame, by_bin: pd.DataFrame | None, with_ideal: bool) -> pd.DataFrame:
    cols = STACK_KEYS + ["energy_j", "energy_std_j", "energy_source", "n_included", "n_excluded"]
    data = estimates.merge(workload_spread(by_bin), on=STACK_KEYS, how="left")
    if "energy_std_j" not in data:
        data["energy_std_j"] = np.nan
    data = data[cols].copy()
    data["stack"] = [stack_label(v, d) for v, d in zip(data["variant"], data["decoding"])]
    data["hue_rank"] = 1
    if with_ideal and "ideal_energy_j" in estimates:
        ideal = (estimates.dropna(subset=["ideal_energy_j"])
                 .drop_duplicates(["workload", "hardware", "model"])
                 .assign(variant=IDEAL, energy_j=lambda d: d["ideal_energy_j"], energy_std_j=np.nan,
                         energy_source="flops-ideal", decoding="", stack=IDEAL, hue_rank=0))
        data = pd.concat([ideal[list(data.columns)], data], ignore_index=True)
    return data


def fig_workload_energy(estimates: pd.DataFrame, files: FigureFiles, by_bin: pd.DataFrame | None = None
                        ) -> list[Path]:
    """Figure 1: energy of each whole workload: the FLOPs ideal, then one bar per framework stack.

    With ``by_bin`` (results/estimates/by_bin.parquet) each estimate carries its spread over repeats.
    """
    setup_style()
    data = _stack_table(estimates, by_bin, with_ideal=True)
    data["energy_kj"] = data["energy_j"] / 1e3
    data["energy_std_kj"] = data["energy_std_j"] / 1e3
    order = list(dict.fromkeys(estimates["workload"]))
    fig = _workload_panels(data.assign(x=data["workload"], hue=data["stack"]), "energy_kj", "energy_std_kj",
                           "workload energy (kJ)", order)
    caption = ("Energy to serve each whole workload: the ideal (FLOPs $\\times$ TDP / dense peak FLOPS) "
               "and each stack's estimate from binned requests and measured batch energies, with its spread "
               "over repeats (bins taken as independent). "
               + cells_note(data) + " " + source_note(data["energy_source"][data["energy_source"] != "flops-ideal"])
               + (f" Grid points left out after failing validation: {int(estimates['n_invalid_points'].sum())}."
                  if "n_invalid_points" in estimates else ""))
    return save(fig, data.drop(columns=["energy_kj", "energy_std_kj", "hue_rank"]), files, caption)


def fig_tasks(estimates: pd.DataFrame, task_workloads: list[str], files: FigureFiles,
              by_bin: pd.DataFrame | None = None) -> list[Path]:
    """Figure 8: energy per request of each classical NLP task (workloads of kind ``task``), per stack.

    Energy per request is the workload estimate divided by its included requests; the ideal is drawn
    beside the stacks, as in Figure 1.
    """
    setup_style()
    est = estimates[estimates["workload"].isin(task_workloads)]
    if est.empty:
        why = ("no classical NLP task in the config (workloads of kind task: imdb, wmt14, cnn_dailymail, "
               "wikitext2)" if not task_workloads else "no estimate for the task workloads")
        data = pd.DataFrame([{"workload": "", "note": f"no data: {why}"}])
        fig = no_data_figure(f"No data: {why}.")
        return save(fig, data, files, f"Classical NLP tasks: no data ({tex_escape(why)}).")
    data = _stack_table(est, by_bin, with_ideal=True)
    n = data["n_included"].where(data["n_included"] > 0)
    if data["stack"].eq(IDEAL).any():
        # The ideal rows carry their workload's request count too.
        counts = est.drop_duplicates("workload").set_index("workload")["n_included"]
        n = n.fillna(data["workload"].map(counts))
    data["energy_per_request_j"] = data["energy_j"] / n
    data["energy_per_request_std_j"] = data["energy_std_j"] / n
    data["note"] = ""
    order = [w for w in task_workloads if w in set(data["workload"])]
    fig = _workload_panels(data.assign(x=data["workload"], hue=data["stack"]), "energy_per_request_j",
                           "energy_per_request_std_j", "energy per request (J)", order)
    counts = ", ".join(f"{tex_escape(w)}: {int(k)}" for w, k in
                       est.drop_duplicates("workload").set_index("workload")["n_included"].items())
    caption = ("Classical NLP tasks: estimated energy per request (workload estimate / requests included; "
               f"requests: {counts}) for each stack, with the ideal (FLOPs $\\times$ TDP / dense peak FLOPS) "
               "beside them; error bars are the spread over repeats. " + cells_note(data) + " "
               + source_note(data["energy_source"][data["energy_source"] != "flops-ideal"]))
    return save(fig, data.drop(columns=["hue_rank"]), files, caption)


def fig_replay_validation(validation: pd.DataFrame, files: FigureFiles) -> list[Path]:
    """Error of the binned estimate against a real replay of the same sampled requests, per stack."""
    setup_style()
    data = validation.copy()
    decodings = data["decoding"] if "decoding" in data else ["greedy"] * len(data)
    data["stack"] = [stack_label(v, d) for v, d in zip(data["variant"], decodings)]
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, 2.4))
    sns.barplot(data, x="workload", y="error_pct", hue="stack", ax=ax, errorbar=None)
    if (data["energy_source"] == ESTIMATED).any():
        for container in ax.containers:
            for bar in container:
                bar.set_hatch("///")
                bar.set_edgecolor("black")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="", ylabel="estimate vs replay (%)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.legend(title="", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    n = ", ".join(f"{w}: {k}" for w, k in data.groupby("workload")["n_requests"].first().items())
    caption = ("Binned estimate ($\\sum N/B \\times E_{batch}$) against the metered replay of the same seeded "
               f"sample of requests served with their true lengths (requests: {tex_escape(n)}); positive means "
               "the estimate is higher. " + cells_note(data) + " " + source_note(data["energy_source"]))
    return save(fig, data, files, caption)


def fig_binning_cdfs(profiles: dict[str, pd.DataFrame], input_edges: list[int], output_edges: list[int],
                     files: FigureFiles) -> list[Path]:
    """Figure 7: CDFs of real and binned input and output lengths per workload (requests within the edges)."""
    from ..binning import bin_edges_ceiling

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
    return save(fig, data, files, caption)


def fig_distortion(profile: pd.DataFrame, input_edges: list[int], output_edges: list[int], workload: str,
                   png_path: str | Path) -> pd.DataFrame:
    """Per-request binned / real tokens, input and output, for one workload (next to its bin stats).

    Writes the PNG and a CSV beside it; returns the plotted table.
    """
    from ..binning import bin_edges_ceiling

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
               title=f"{axis}: total x{data[f'{axis}_tokens'].pipe(lambda s, r=r: (r * s).sum() / s.sum()):.2f}")
    axes[0].set_ylabel("requests")
    fig.suptitle(workload, fontsize="small")
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    with atomic_path(png_path.with_suffix(".csv")) as tmp:
        data.to_csv(tmp, index=False)
    return data
