"""Workload figures: whole-workload energy (Figure 1), classical tasks (Figure 8), binning CDFs
(Figure 7), replay validation, and the per-workload distortion histogram of the bin stage."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy.paper.figures.style import (
    ESTIMATED,
    SINGLE_COLUMN_IN,
    FigureFiles,
    cells_note,
    colours,
    no_data_figure,
    plain_log_labels,
    plt,
    save,
    setup_style,
    shared_legend,
    source_note,
    tex_escape,
)
from llm_energy.pipeline.io import atomic_path
from llm_energy.workloads.binning import bin_edges_ceiling

log = logging.getLogger(__name__)


STACK_KEYS = ["workload", "hardware", "model", "variant", "decoding"]
IDEAL = "ideal (FLOPs x TDP / peak)"
# How each method's bar is drawn and named: the paper's binned estimate hollow, the energy model solid.
METHOD_LABELS = {"binned": "binned (the paper's method)", "model": "energy model at true lengths", "ideal": IDEAL}
CARBON_COLUMNS = ["pue", "facility_energy_kwh", "grid_intensity_g_per_kwh", "co2e_kg", "cost", "currency",
                  "facility_energy_kwh_per_million_requests", "co2e_kg_per_million_requests",
                  "cost_per_million_requests"]
# The error bar (column error_j): repeat spread and systematic error taken as independent.
RSS = "sqrt(repeat std^2 + systematic^2)"
UNKNOWN_SYSTEMATIC = "systematic error unknown"


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


def error_bars(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with ``systematic_error_j`` (systematic_error_pct / 100 x energy), ``error_j`` (the bar:
    sqrt(energy_std_j^2 + systematic_error_j^2), a missing part counted as 0) and ``error_basis`` (what
    the bar holds, and why a part is missing: a stack without replay has no known systematic error)."""
    out = data.copy()
    std, sys_pct = out["energy_std_j"].astype(float), out["systematic_error_pct"].astype(float)
    out["systematic_error_j"] = sys_pct / 100.0 * out["energy_j"]
    out["error_j"] = np.sqrt(std.fillna(0.0) ** 2 + out["systematic_error_j"].fillna(0.0) ** 2)
    out.loc[std.isna() & sys_pct.isna(), "error_j"] = np.nan
    basis = []
    for s, e, note in zip(std, sys_pct, out["systematic_error_note"].fillna("")):
        if not pd.isna(e):
            basis.append(RSS if not pd.isna(s) else "systematic only (the method has no repeat spread)")
        else:
            why = f"{UNKNOWN_SYSTEMATIC} ({note})" if note else UNKNOWN_SYSTEMATIC
            basis.append(f"repeat std only; {why}" if not pd.isna(s) else f"no error bar: no repeat spread, {why}")
    out["error_basis"] = basis
    return out


def _style_bars(bars, colour, method: str, estimated: bool) -> None:
    """The paper's binned estimate hollow (edge in the stack's colour), the model and the ideal solid;
    estimated energy (cpu-estimate) hatched."""
    for bar in bars:
        if method == "binned":
            bar.set_facecolor("white")
            bar.set_edgecolor(colour)
            bar.set_linewidth(1.0)
        else:
            bar.set_facecolor(colour)
            bar.set_edgecolor("black" if estimated else colour)
        if estimated:
            bar.set_hatch("///")


def _bars(ax, data: pd.DataFrame, x_order: list, slots: list[tuple[str, str]], y: str, yerr: str | None,
          hue_colours: dict, log_axis: bool = True, marker: str | None = None) -> bool:
    """Grouped bars (x: workload; a slot per stack and method), error bars where given. On the log axis a
    bar's lower error stops at a tenth of its value; returns whether any had to. On a linear axis
    (``log_axis`` false) the error bars are symmetric. ``marker``: a column drawn as a diamond on its bar."""
    width, cut = 0.8 / max(len(slots), 1), False
    for j, (hue, method) in enumerate(slots):
        sub = data[(data["hue"] == hue) & (data["method"] == method)].set_index("x")
        for i, x in enumerate(x_order):
            if x not in sub.index or pd.isna(sub.loc[x, y]):
                continue
            row = sub.loc[x]
            err = row[yerr] if yerr and yerr in row and not pd.isna(row[yerr]) and row[yerr] > 0 else None
            if err is not None and log_axis:
                cut |= err > 0.9 * row[y]
                err = [[min(err, 0.9 * row[y])], [err]]
            x_bar = i - 0.4 + width * (j + 0.5)
            bars = ax.bar(x_bar, row[y], width=width, yerr=err, capsize=1.5,
                          error_kw={"elinewidth": 0.8, "ecolor": "black"})
            if marker and marker in row and not pd.isna(row[marker]):
                ax.plot([x_bar], [row[marker]], marker="D", markersize=3, color="black", linestyle="none")
            _style_bars(bars, hue_colours[hue], method, row["energy_source"] == ESTIMATED)
    ax.set_xticks(range(len(x_order)))
    ax.set_xticklabels(x_order, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(x_order) - 0.4)
    return cut


def _legend_handles(data: pd.DataFrame, hue_order: list, hue_colours: dict) -> list:
    handles = [plt.Rectangle((0, 0), 1, 1, color=hue_colours[h], label=h) for h in hue_order]
    methods = set(data["method"])
    if "binned" in methods:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black",
                                     label="hollow: " + METHOD_LABELS["binned"]))
    if "model" in methods:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="grey", label="solid: " + METHOD_LABELS["model"]))
    if (data["energy_source"] == ESTIMATED).any():
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="///",
                                     label="hatched: cpu-estimate"))
    return handles


def stack_colours(hues: list) -> dict:
    """One colour per stack, the same in every workload figure (1, 8 and the replay validation): the
    ideal the first colour, the stacks the next ones in the order of their names."""
    stacks = sorted(h for h in hues if h != IDEAL)
    pal = colours(len(stacks) + 1)
    return {IDEAL: pal[0], **{s: pal[k + 1] for k, s in enumerate(stacks)}}


def _slots(data: pd.DataFrame, hue_order: list) -> list[tuple[str, str]]:
    """The bars of a group: per stack, its binned bar then its model bar (the ideal its own)."""
    present = set(zip(data["hue"], data["method"]))
    return [(h, m) for h in hue_order for m in ("ideal", "binned", "model") if (h, m) in present]


def _workload_panels(data: pd.DataFrame, y: str, yerr: str | None, ylabel: str, x_order: list,
                     marker: str | None = None):
    """One panel per hardware (and model, when several), a shared legend under them. Returns the
    figure and whether a lower error bar was cut at a tenth of its bar."""
    facets = list(data[["hardware", "model"]].drop_duplicates().itertuples(index=False, name=None))
    hue_order = list(dict.fromkeys(data.sort_values("hue_rank", kind="stable")["hue"]))
    slots = _slots(data, hue_order)
    hue_colours = stack_colours(hue_order)
    width = max(SINGLE_COLUMN_IN, 0.22 * len(x_order) * max(len(slots), 1) / 1.6 + 0.8)
    fig, axes = plt.subplots(1, len(facets), figsize=(width * len(facets), 2.4), squeeze=False, sharey=True)
    many_models, cut = data["model"].nunique() > 1, False
    for ax, (hw, model) in zip(axes[0], facets):
        sub = data[(data["hardware"] == hw) & (data["model"] == model)]
        cut |= _bars(ax, sub, [x for x in x_order if x in set(sub["x"])], slots, y, yerr, hue_colours,
                     marker=marker)
        ax.set_yscale("log")
        plain_log_labels(ax)
        ax.set(title=f"{hw}" + (f", {model}" if many_models else ""), xlabel="")
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    shared_legend(fig, _legend_handles(data, hue_order, hue_colours), ncol=2)
    return fig, cut


def _with_methods(estimates: pd.DataFrame) -> pd.DataFrame:
    """Estimates with ``method`` and the systematic error columns (older tables have neither)."""
    est = estimates.copy()
    if "method" not in est:
        est["method"] = "binned"
    if "systematic_error_pct" not in est:
        est["systematic_error_pct"] = np.nan
    if "systematic_error_note" not in est:
        est["systematic_error_note"] = "the estimates give no systematic error"
    return est


def _ideal_rows(est: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One ideal per (workload, hardware, model): the binned rows' (the paper's, FLOPs of the binned
    lengths), or the model's (true lengths) where no binned row has one."""
    ideal = (est.dropna(subset=["ideal_energy_j"]).assign(first=lambda d: d["method"] != "binned")
             .sort_values("first", kind="stable").drop_duplicates(["workload", "hardware", "model"]))
    ideal = ideal.assign(variant=IDEAL, energy_j=ideal["ideal_energy_j"], energy_std_j=np.nan,
                         energy_source="flops-ideal", decoding="", stack=IDEAL, hue_rank=0,
                         ideal_of=ideal["method"], method="ideal", method_label=IDEAL, error_basis="")
    return ideal.reindex(columns=columns)


def _stack_table(estimates: pd.DataFrame, by_bin: pd.DataFrame | None, with_ideal: bool) -> pd.DataFrame:
    """One row per (workload, stack, method) with its error bar (:func:`error_bars`), and the ideal's."""
    est = _with_methods(estimates)
    spread = workload_spread(by_bin).assign(method="binned")  # the repeat spread: binned only
    data = est.merge(spread.astype({k: est[k].dtype for k in STACK_KEYS}) if len(spread) else spread,
                     on=STACK_KEYS + ["method"], how="left")
    cols = STACK_KEYS + ["method", "energy_j", "energy_std_j", "systematic_error_pct", "systematic_error_note",
                         "energy_source", "n_included", "n_excluded"] + [c for c in CARBON_COLUMNS if c in est] \
        + [c for c in ("coverage", "whole_trace_energy_j", "whole_trace_n_requests") if c in est]
    data = error_bars(data[cols])
    data["stack"] = [stack_label(v, d) for v, d in zip(data["variant"], data["decoding"])]
    data["method_label"] = data["method"].map(METHOD_LABELS).fillna(data["method"])
    data["hue_rank"] = 1
    if with_ideal and "ideal_energy_j" in est:
        data = pd.concat([_ideal_rows(est, list(data.columns) + ["ideal_of"]), data], ignore_index=True)
    return data


def _coverage_caption(data: pd.DataFrame) -> str:
    """Which requests the bars price (the same for both methods), and what the diamonds add."""
    bars = data[data["method"] != "ideal"]
    if "coverage" not in bars or bars["coverage"].isna().all():
        return ""
    left = bars.groupby("workload")["n_excluded"].max()
    left = ", ".join(f"{tex_escape(w)} {int(n)}" for w, n in left.items() if n > 0)
    text = f"Both methods price the same requests, {tex_escape(bars['coverage'].dropna().iloc[0])}"
    text += f" (left out, per workload: {left})." if left else "."
    if "whole_trace_energy_j" in bars and bars["whole_trace_energy_j"].notna().any():
        text += (" Diamond: the energy model over the whole trace, every request at its true length (those "
                 "past the measured lengths extrapolated).")
    return text


def _error_caption(data: pd.DataFrame, cut: bool) -> str:
    """What the error bars hold, and which stacks have no known systematic error (no replay)."""
    bars = data[data["method"] != "ideal"]
    unknown = bars[bars["error_basis"].str.contains(UNKNOWN_SYSTEMATIC)]
    text = ("Error bars: $\\sqrt{\\sigma_{rep}^2 + (s \\cdot E)^2}$, the spread over repeats (bins taken as "
            "independent; the model has none) combined with the method's systematic error $s$, its largest "
            "absolute error against the metered replays of that stack (column error\\_basis of the data).")
    if len(unknown):
        stacks = sorted({f"{m} {tex_escape(st)}" for m, st in zip(unknown["method"], unknown["stack"])})
        text += (" Systematic error unknown (no replay of the stack), bar of the repeat spread only (none for "
                 "the model): "
                 + ", ".join(stacks) + ".")
    if cut:
        text += " On the log axis a lower error bar longer than 90\\% of its bar is cut there."
    return text


def fig_workload_energy(estimates: pd.DataFrame, files: FigureFiles, by_bin: pd.DataFrame | None = None
                        ) -> list[Path]:
    """Figure 1: energy of each whole workload: the FLOPs ideal, then per framework stack the paper's
    binned estimate (hollow) and the energy model's (solid), each with its error bar (:func:`error_bars`).

    With ``by_bin`` (results/estimates/by_bin.parquet) the binned estimates carry their spread over
    repeats. The plotted data also holds each estimate's facility kWh, kgCO2e and cost where given.
    """
    setup_style()
    data = _stack_table(estimates, by_bin, with_ideal=True)
    whole = data["whole_trace_energy_j"] / 1e3 if "whole_trace_energy_j" in data else np.nan
    plot = data.assign(x=data["workload"], hue=data["stack"], energy_kj=data["energy_j"] / 1e3,
                       error_kj=data["error_j"] / 1e3, whole_kj=whole)
    order = list(dict.fromkeys(estimates["workload"]))
    fig, cut = _workload_panels(plot, "energy_kj", "error_kj", "workload energy (kJ)", order, marker="whole_kj")
    caption = ("Energy to serve each workload: the ideal (FLOPs $\\times$ TDP / dense peak FLOPS, of the "
               "binned lengths as in the paper) and, per stack, the paper's estimate from binned requests and "
               "measured batch energies (hollow) beside the energy model fitted to the cell and served at the "
               "requests' true lengths (solid). " + _coverage_caption(data) + " " + _error_caption(data, cut) + " "
               + cells_note(data) + " " + source_note(data["energy_source"][data["energy_source"] != "flops-ideal"])
               + (f" Grid points left out after failing validation: {int(estimates['n_invalid_points'].sum())}."
                  if "n_invalid_points" in estimates else ""))
    return save(fig, data.drop(columns=["hue_rank"]), files, caption)


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
    n = data["n_included"].where(data["n_included"] > 0)  # the ideal rows carry their method's count
    data["energy_per_request_j"] = data["energy_j"] / n
    data["energy_per_request_std_j"] = data["energy_std_j"] / n
    data["error_per_request_j"] = data["error_j"] / n
    data["note"] = ""
    order = [w for w in task_workloads if w in set(data["workload"])]
    fig, cut = _workload_panels(data.assign(x=data["workload"], hue=data["stack"]), "energy_per_request_j",
                                "error_per_request_j", "energy per request (J)", order)
    first = _with_methods(est).assign(m=lambda d: d["method"] != "binned").sort_values("m", kind="stable")
    counts = ", ".join(f"{tex_escape(w)}: {int(k)}" for w, k in
                       first.drop_duplicates("workload").set_index("workload")["n_included"].items())
    caption = ("Classical NLP tasks: estimated energy per request (workload estimate / requests included; "
               f"requests: {counts}) for each stack, the paper's binned estimate (hollow) beside the energy model "
               "at true lengths (solid), with the ideal (FLOPs $\\times$ TDP / dense peak FLOPS) beside them. "
               + _error_caption(data, cut) + " " + cells_note(data) + " "
               + source_note(data["energy_source"][data["energy_source"] != "flops-ideal"]))
    return save(fig, data.drop(columns=["hue_rank"]), files, caption)


def _replay_long(validation: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, stack, method) of the replay validation: the method's error in percent, and
    (``corrected``, the model's rows) its error with the meter's changes taken out (``model_error_steady_pct``)."""
    data = validation.copy()
    decodings = data["decoding"] if "decoding" in data else ["greedy"] * len(data)
    data["stack"] = [stack_label(v, d) for v, d in zip(data["variant"], decodings)]
    nan = pd.Series(np.nan, index=data.index)
    methods = (("binned", "error_pct", "interval_pct"), ("model", "model_error_pct", "model_interval_pct"))
    steady = data.get("model_error_steady_pct", nan)
    parts = [data.assign(method=method, error=data[col], interval=data.get(width, nan),
                         corrected=steady if method == "model" else nan)
             for method, col, width in methods if col in data]
    return pd.concat(parts, ignore_index=True).assign(hue_rank=1)


def fig_replay_validation(validation: pd.DataFrame, files: FigureFiles) -> list[Path]:
    """Error of both estimates against a real replay of the same sampled requests, per stack: the paper's
    binned estimate (hollow) beside the energy model at true lengths (solid)."""
    setup_style()
    long = _replay_long(validation)
    stacks = list(dict.fromkeys(long["stack"]))
    slots = _slots(long.assign(hue=long["stack"]), stacks)
    order = list(dict.fromkeys(long["workload"]))
    hue_colours = stack_colours(stacks)
    fig, ax = plt.subplots(figsize=(max(SINGLE_COLUMN_IN, 0.18 * len(order) * len(slots) + 0.8), 2.4))
    _bars(ax, long.assign(x=long["workload"], hue=long["stack"]), order, slots, "error", "interval", hue_colours,
          log_axis=False, marker="corrected")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="", ylabel="estimate vs replay (%)")
    ax.legend(handles=_legend_handles(long, stacks, hue_colours), fontsize="small", loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    data = long[long["method"] == "binned"].drop(columns=["method", "error", "interval", "hue_rank", "corrected"])
    n = ", ".join(f"{w}: {k}" for w, k in data.groupby("workload")["n_requests"].first().items())
    missing = long[long["error"].isna()]
    caption = ("Error of each estimate against the metered replay of the same seeded sample of requests "
               f"(requests: {tex_escape(n)}); positive means the estimate is higher. Hollow: the paper's binned "
               "estimate ($\\sum N/B \\times E_{batch}$); solid: the cell's energy model served at the requests' "
               "true lengths. Error bars: the interval the noise alone allows (the replay runs' standard error, "
               "the meter's drift between the grid job and the replay job from the control points, and for the "
               "model its leave-one-point-out error, in quadrature); a bar whose interval reaches 0 agrees with "
               "the replay within the noise. Diamond: the model's error with the meter's changes taken out, "
               "within the grid job (the reference kernel read at every point) and between the grid and replay "
               "jobs (the control points, prefill and decode apart); the bars stay as metered."
               + (f" No bar: {len(missing)} estimate(s) the method could not make (the data's "
                  "estimate\\_note and model\\_note say why)." if len(missing) else "")
               + " " + cells_note(data) + " " + source_note(data["energy_source"]))
    return save(fig, data, files, caption)


def fig_binning_cdfs(profiles: dict[str, pd.DataFrame], input_edges: list[int], output_edges: list[int],
                     files: FigureFiles) -> list[Path]:
    """Figure 7: CDFs of real and binned input and output lengths per workload (requests within the edges)."""
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
