"""Figures against batch size at the sweep's fixed shape (input ``sweep_fixed_input``, output
``sweep_fixed_output``): decoding strategies (3), dense vs MoE (4), torch.compile and CUDA graphs (5),
tensor parallelism (6); Figure 9 is in ``online``, the frontier in ``frontier``.

Each plots mean +- standard deviation over the valid repeats of every batch size measured; a batch
size that did not run (``oom``, ``unsupported``) is marked by a dotted line and a labelled cross, and
kept in the CSV with its status. A comparison with nothing to compare says so in the CSV (``note``)
and the caption instead of failing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import transforms
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from llm_energy.paper.figures.data import (
    CELL,
    architecture_label,
    base_variant,
    batch_table,
    decoding_order,
    is_online,
    model_info,
    model_label,
    single_device_offline,
    tensor_parallel,
    usable,
)
from llm_energy.paper.figures.style import (
    ESTIMATED,
    PANEL_H_IN,
    PANEL_W_IN,
    FigureFiles,
    cells_note,
    colours,
    errorbar,
    estimated_handle,
    no_data_figure,
    no_data_panel,
    plain_log_labels,
    plt,
    save,
    setup_style,
    shared_legend,
    source_note,
    tex_escape,
)
from llm_energy.pipeline.cells import is_cpu_hardware

MAX_COLS = 2
COMPILE = ("torch.compile", "transformers-eager", "transformers-compile")
CUDA_GRAPHS = ("CUDA graphs", "vllm-eager", "vllm-cudagraph")
CPU_STAND_IN = "vLLM compiled (no CUDA graphs on a CPU)"  # what vllm-cudagraph is on a CPU


def note_row(columns, note: str, **values) -> dict:
    return {**{c: np.nan for c in columns}, **values, "note": note}


INTEGER_COLUMNS = ("batch_size", "n_repeats", "max_batch_fit", "tensor_parallel", "online_n_repeats",
                   "offline_n_repeats")


def with_notes(data: pd.DataFrame, notes: list[dict]) -> pd.DataFrame:
    """The plotted rows, then one row per note (its other columns empty); counts stay integers."""
    data = data.assign(note="") if "note" not in data else data
    if notes:
        data = pd.concat([data, pd.DataFrame(notes)], ignore_index=True)
    for c in INTEGER_COLUMNS:
        if c in data:
            data[c] = pd.to_numeric(data[c], errors="coerce").round().astype("Int64")
    return data


def _batch_ticks(ax, sizes) -> None:
    sizes = sorted({int(s) for s in sizes})
    if len(sizes) > 6:
        sizes = sizes[::2] if sizes[-1] in sizes[::2] else sizes[::2] + [sizes[-1]]
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def batch_grid(data: pd.DataFrame, facets: list, hue_order: list, metrics: list[tuple], *,
               hue_colours: dict | None = None, hue_labels: dict | None = None, marker_of: dict | None = None,
               style_of: dict | None = None, mark_largest: bool = False, legend_extra: list | None = None,
               zero_line: bool | str = False, banner: str = ""):
    """Panels against batch size: one row per facet with its metrics side by side (one metric: facets
    wrapped after ``MAX_COLS`` columns).

    ``data`` has ``facet``, ``hue``, ``batch_size``, ``status``, ``energy_source`` and, for each metric
    ``(mean_col, std_col, ylabel, log_y)``, its columns. ``mark_largest`` rings the largest batch that ran.
    """
    hue_colours = hue_colours or dict(zip(hue_order, colours(len(hue_order))))
    hue_labels = hue_labels or {h: str(h) for h in hue_order}
    if len(metrics) > 1:  # one row per facet, its metrics side by side
        ncols, nrows = len(metrics), len(facets)
        slots = {(k, r): (k, r) for k in range(len(facets)) for r in range(len(metrics))}
    else:  # one metric: facets wrapped
        ncols = min(len(facets), MAX_COLS)
        nrows = -(-len(facets) // ncols)
        slots = {(k, 0): (k // ncols, k % ncols) for k in range(len(facets))}
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_W_IN * ncols + 0.4, PANEL_H_IN * nrows + 0.2),
                             squeeze=False)
    handles: dict = {}
    failed_seen = False
    style = {"colours": hue_colours, "labels": hue_labels, "markers": marker_of or {}, "lines": style_of or {}}
    for k, facet in enumerate(facets):
        sub = data[data["facet"] == facet]
        for r, metric in enumerate(metrics):
            ax = axes[slots[(k, r)][0]][slots[(k, r)][1]]
            failed_seen |= batch_panel(ax, sub, facet, metric, hue_order, style, handles, mark_largest, zero_line)
    for k in range(len(slots), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.tight_layout()
    legend = _batch_legend([handles[h] for h in hue_order if h in handles], data, failed_seen, mark_largest,
                           legend_extra)
    shared_legend(fig, legend, ncol=min(len(legend), 3))
    if banner:  # what is missing from the comparison, said in the figure itself
        import textwrap

        fig.suptitle(textwrap.fill(banner, width=int(fig.get_figwidth() * 14)), fontsize="small", y=1.0,
                     va="bottom", color="dimgrey")
    return fig


def _greedy_batch_data(measurements: pd.DataFrame, fixed_input: int, fixed_output: int):
    """Single-device offline greedy rows, their batch table at the fixed shape, and the invalid count."""
    m = single_device_offline(measurements)
    m = m[m["decoding"] == "greedy"] if not m.empty else m
    _, n_invalid = usable(at_fixed_shape_or_empty(m, fixed_input, fixed_output))
    return m, batch_table(m, fixed_input, fixed_output), n_invalid


def zero_label(ax, text: str):
    """A label just above a panel's zero line, with room made for it when every value is below zero
    (Figure 9's "above 0" sat on the line and was struck through by it)."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, max(hi, 0.0) + 0.12 * (max(hi, 0.0) - lo))
    return ax.annotate(text, xy=(0.02, 0.0), xycoords=("axes fraction", "data"), xytext=(0, 2),
                       textcoords="offset points", ha="left", va="bottom", fontsize="x-small")


def batch_panel(ax, sub: pd.DataFrame, facet, metric: tuple, hue_order: list, style: dict, handles: dict,
                 mark_largest: bool, zero_line: bool | str) -> bool:
    """One panel of :func:`batch_grid`: a line per hue against batch size, x marks for points that did
    not run; returns whether any point did not run."""
    mean, std, ylabel, log_y = metric
    okm = sub[sub["status"] == "ok"].dropna(subset=[mean])
    if okm.empty:
        no_data_panel(ax, f"{facet}:\nno data")
        return False
    for hue in hue_order:
        grp = okm[okm["hue"] == hue].sort_values("batch_size")
        if grp.empty:
            continue
        colour = style["colours"][hue]
        est = bool((grp["energy_source"] == ESTIMATED).any())
        h = errorbar(ax, grp["batch_size"], grp[mean], grp[std], colour, est, label=style["labels"][hue],
                     marker=style["markers"].get(hue, "o"), linestyle=style["lines"].get(hue, "-"))
        handles.setdefault(hue, h)
        if mark_largest:
            last = grp.iloc[-1]
            ax.plot(last["batch_size"], last[mean], marker="o", markersize=10, markerfacecolor="none",
                    markeredgecolor=colour, linestyle="", zorder=1)
    bottom = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    failed = sub[sub["status"] != "ok"]
    for row in failed.itertuples():
        # A dotted line through the panel and a word beside the cross, so that it never reads as a
        # point measured at the axis floor.
        colour = style["colours"].get(row.hue, "black")
        ax.axvline(row.batch_size, color=colour, linestyle=":", linewidth=0.8, alpha=0.6)
        ax.plot(row.batch_size, 0.04, marker="x", color=colour, markersize=5, transform=bottom, clip_on=False,
                linestyle="")
        ax.annotate("did not run", xy=(row.batch_size, 0.04), xycoords=bottom, xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize="xx-small", color=colour)
    if zero_line:
        ax.axhline(0, color="black", linewidth=0.8)
        if isinstance(zero_line, str):
            zero_label(ax, zero_line)
    _batch_ticks(ax, sub["batch_size"])
    if log_y:
        ax.set_yscale("log")
        plain_log_labels(ax)
    ax.set_ylabel(ylabel, fontsize="small")
    ax.set_xlabel("batch size", fontsize="small")
    ax.tick_params(labelsize="x-small")
    ax.set_title(str(facet), fontsize="small")
    return not failed.empty


def _batch_legend(legend: list, data: pd.DataFrame, failed_seen: bool, mark_largest: bool,
                  legend_extra: list | None) -> list:
    """The hues' handles, then what the marks mean (estimated energy, did not run, largest batch)."""
    if (data["energy_source"] == ESTIMATED).any():
        legend.append(estimated_handle())
    if failed_seen:
        legend.append(Line2D([], [], color="grey", marker="x", linestyle="",
                             label="x: did not run (oom / unsupported)"))
    if mark_largest:
        legend.append(Line2D([], [], color="grey", marker="o", markersize=10, markerfacecolor="none", linestyle="",
                             label="ring: largest batch that ran"))
    return legend + (legend_extra or [])


def _banner(notes: list[dict]) -> str:
    return " ".join(n["note"][0].upper() + n["note"][1:] + "." for n in notes)


def save_no_data(files: FigureFiles, columns: list[str], why: str, title: str, context: pd.DataFrame):
    data = pd.DataFrame([note_row(columns, f"no data: {why}")])
    fig = no_data_figure(f"No data: {why}.")
    caption = f"{title}: no data; {tex_escape(why)}. " + cells_note(context)
    return save(fig, data, files, caption)


def figure_context(measurements: pd.DataFrame) -> pd.DataFrame:
    return measurements[["hardware", "model"]] if not measurements.empty else pd.DataFrame()


def shape_note(fixed_input: int, fixed_output: int) -> str:
    return (f"Points at input {fixed_input} and output {fixed_output} tokens, every batch size measured; mean over "
            "valid repeats with their standard deviation.")


def _invalid_note(n: int) -> str:
    return f" {n} measurement row(s) failed validation and are left out." if n else ""


def _pct_vs(data: pd.DataFrame, ref_mask: pd.Series, keys: list[str], value: str) -> pd.Series:
    """100 x (value / value of the reference row with the same keys - 1)."""
    ref = data[ref_mask].set_index(keys)[value]
    ref = ref[~ref.index.duplicated()]
    idx = pd.MultiIndex.from_frame(data[keys])
    return pd.Series(100.0 * (data[value].to_numpy() / ref.reindex(idx).to_numpy() - 1.0), index=data.index)


# Figure 3 -----------------------------------------------------------------------------------------------


def fig_decoding(measurements: pd.DataFrame, fixed_input: int, fixed_output: int, files: FigureFiles) -> list[Path]:
    """Figure 3: each decoding strategy's energy per batch and per output token against batch size,
    one panel per (hardware, model, variant); ``vs_greedy_pct`` compares with greedy at the same batch."""
    setup_style()
    _, n_invalid = usable(at_fixed_shape_or_empty(measurements, fixed_input, fixed_output))
    data = batch_table(single_device_offline(measurements), fixed_input, fixed_output)
    title = "Decoding strategies against batch size (Figure 3)"
    if data.empty:
        return save_no_data(files, list(data.columns) + ["vs_greedy_pct"],
                             f"no cell has points at input {fixed_input} and output {fixed_output}", title,
                             figure_context(measurements))
    cell = ["hardware", "model", "variant"]
    n_dec = data.groupby(cell)["decoding"].nunique()
    notes = []
    if (n_dec > 1).any():
        keep = n_dec[n_dec > 1].index
        data = data.set_index(cell).loc[keep].reset_index()
    else:
        notes.append(note_row(data.columns, "only one decoding strategy measured ("
                               + ", ".join(sorted(data["decoding"].unique()))
                               + "): add decoding strategies to the cells to compare them"))
    data["vs_greedy_pct"] = _pct_vs(data, data["decoding"] == "greedy", cell + ["batch_size"], "energy_mean_j")
    order = decoding_order(data["decoding"])
    data["facet"] = [f"{v}\n{h}, {m}" for h, m, v in zip(data["hardware"], data["model"], data["variant"])]
    data["hue"] = data["decoding"]
    data["energy_per_token_mean_mj"] = 1e3 * data["energy_per_token_mean_j"]
    data["energy_per_token_std_mj"] = 1e3 * data["energy_per_token_std_j"]
    facets = list(dict.fromkeys(data.sort_values(cell)["facet"]))
    fig = batch_grid(data, facets, order, [("energy_mean_j", "energy_std_j", "energy per batch (J)", True),
                                           ("energy_per_token_mean_mj", "energy_per_token_std_mj",
                                            "energy per output token (mJ)", True)], banner=_banner(notes))
    unsupported = data[data["status"] != "ok"]
    fail_note = ("" if unsupported.empty else " Crosses mark batch sizes that did not run ("
                 + ", ".join(sorted(f"{tex_escape(d)} at batch {int(b)}: {s}" for d, b, s in
                                    unsupported[["decoding", "batch_size", "status"]].itertuples(index=False)))
                 + ").")
    caption = (f"{title}: energy per batch and per output token (energy per batch / (batch size $\\times$ output "
               "length)) of each decoding strategy, one row of panels per framework variant, hardware and model. "
               + shape_note(fixed_input, fixed_output) + fail_note
               + (" Only one decoding strategy was measured: add strategies to the cells to compare them."
                  if notes else "")
               + " " + cells_note(data) + " " + source_note(data["energy_source"]) + _invalid_note(n_invalid))
    out = with_notes(data.drop(columns=["facet", "hue", "energy_per_token_mean_mj", "energy_per_token_std_mj"]),
                      notes)
    return save(fig, out, files, caption)


def at_fixed_shape_or_empty(m: pd.DataFrame, fixed_input: int, fixed_output: int) -> pd.DataFrame:
    if m.empty:
        return m
    return m[(m["input_len"] == fixed_input) & (m["output_len"] == fixed_output)]


# Figure 4 -----------------------------------------------------------------------------------------------


def fig_moe(measurements: pd.DataFrame, fixed_input: int, fixed_output: int, files: FigureFiles) -> list[Path]:
    """Figure 4: dense against mixture-of-experts models: energy and latency per batch against batch size,
    one panel per (hardware, variant), greedy decoding; models told apart by the ``moe``, ``model_type``,
    ``n_parameters`` and ``n_active_parameters`` columns (unknown where a table lacks them)."""
    setup_style()
    m, data, n_invalid = _greedy_batch_data(measurements, fixed_input, fixed_output)
    title = "Dense and mixture-of-experts models against batch size (Figure 4)"
    info = model_info(measurements) if not measurements.empty else pd.DataFrame(columns=["model"])
    if data.empty:
        return save_no_data(files, list(data.columns) + list(info.columns[1:]) + ["architecture"],
                             f"no greedy cell has points at input {fixed_input} and output {fixed_output}", title,
                             figure_context(measurements))
    info["architecture"] = [architecture_label(r) for r in info.to_dict("records")]
    info["label"] = [model_label(r) for r in info.to_dict("records")]
    data = data.merge(info, on="model", how="left")
    notes = []
    archs = set(info["architecture"])
    if archs == {"unknown"}:
        notes.append(note_row(data.columns, "architecture unknown for every model (no moe or model_type column in "
                               "the measurements): models told apart by name only"))
    elif "MoE" not in archs:
        notes.append(note_row(data.columns, "no mixture-of-experts model measured: add one (e.g. OLMoE) to the cells"))
    elif "dense" not in archs:
        notes.append(note_row(data.columns, "no dense model measured: add one (e.g. OLMo-1B) to the cells"))
    if "MoE" in archs:
        # Only the (hardware, variant) panels that hold a mixture-of-experts model: the comparison.
        with_moe = data.groupby(["hardware", "variant"])["architecture"].transform(lambda a: (a == "MoE").any())
        data = data[with_moe.astype(bool)]
    data["facet"] = [f"{v}\n{h}" for h, v in zip(data["hardware"], data["variant"])]
    data["hue"] = data["label"]
    order = list(dict.fromkeys(data.sort_values(["architecture", "model"])["label"]))
    markers = {lab: {"MoE": "s", "dense": "o"}.get(arch, "^")
               for lab, arch in zip(data["label"], data["architecture"])}
    facets = list(dict.fromkeys(data.sort_values(["hardware", "variant"])["facet"]))
    fig = batch_grid(data, facets, order, [("energy_mean_j", "energy_std_j", "energy per batch (J)", True),
                                           ("duration_mean_s", "duration_std_s", "latency per batch (s)", True)],
                     marker_of=markers, banner=_banner(notes))
    caption = (f"{title}: energy and latency per batch of each model (square markers: MoE; circles: dense; "
               "triangles: unknown), one row of panels per framework variant and hardware, greedy decoding. "
               + shape_note(fixed_input, fixed_output)
               + "".join(" " + tex_escape(n["note"][0].upper() + n["note"][1:]) + "." for n in notes)
               + " " + cells_note(data) + " " + source_note(data["energy_source"]) + _invalid_note(n_invalid))
    out = with_notes(data.drop(columns=["facet", "hue"]), notes)
    return save(fig, out, files, caption)


# Figure 5 -----------------------------------------------------------------------------------------------


def fig_compile_graphs(measurements: pd.DataFrame, fixed_input: int, fixed_output: int,
                       files: FigureFiles) -> list[Path]:
    """Figure 5: torch.compile off/on (transformers-eager, transformers-compile) and CUDA graphs off/on
    (vllm-eager, vllm-cudagraph): energy per batch and throughput against batch size per hardware and
    model, the largest batch that ran ringed and batch sizes out of memory crossed."""
    setup_style()
    m, data, n_invalid = _greedy_batch_data(measurements, fixed_input, fixed_output)
    title = "torch.compile and CUDA graphs against batch size (Figure 5)"
    extra = ["optimization", "setting", "max_batch_fit", "vs_off_energy_pct", "vs_off_throughput_pct"]
    pairs = {v: (opt, "off" if v == off else "on") for opt, off, on in (COMPILE, CUDA_GRAPHS) for v in (off, on)}
    data = data[data["variant"].isin(pairs)] if not data.empty else data
    if data.empty:
        return save_no_data(files, list(data.columns) + extra,
                             "none of transformers-eager, transformers-compile, vllm-eager, vllm-cudagraph has "
                             f"greedy points at input {fixed_input} and output {fixed_output}", title,
                             figure_context(measurements))
    data = data.assign(optimization=data["variant"].map(lambda v: pairs[v][0]),
                       setting=data["variant"].map(lambda v: pairs[v][1]))
    fit = data[data["status"] == "ok"].groupby(CELL)["batch_size"].max().rename("max_batch_fit")
    data = data.merge(fit, left_on=CELL, right_index=True, how="left")
    keys = ["hardware", "model", "decoding", "optimization", "batch_size"]
    off = data["setting"] == "off"
    data["vs_off_energy_pct"] = _pct_vs(data, off, keys, "energy_mean_j").where(~off)
    data["vs_off_throughput_pct"] = _pct_vs(data, off, keys, "throughput_mean_tok_s").where(~off)
    data, notes = _unpaired(data)
    # On a CPU, vllm-cudagraph is vLLM's compiled path (torch.compile): there are no CUDA graphs.
    on_cpu = data["hardware"].astype(str).map(is_cpu_hardware) & (data["optimization"] == CUDA_GRAPHS[0])
    data.loc[on_cpu, "optimization"] = CPU_STAND_IN
    data["facet"] = [f"{o}\n{h}, {m}" for h, m, o in zip(data["hardware"], data["model"], data["optimization"])]
    data["hue"] = data["variant"]
    order = [v for _, a, b in (COMPILE, CUDA_GRAPHS) for v in (a, b) if v in set(data["variant"])]
    palette = colours(4)
    hue_colours = {COMPILE[1]: palette[0], COMPILE[2]: palette[1], CUDA_GRAPHS[1]: palette[2],
                   CUDA_GRAPHS[2]: palette[3]}
    styles = {v: "--" if pairs[v][1] == "off" else "-" for v in order}
    facets = list(dict.fromkeys(data.sort_values(["optimization", "hardware", "model"], ascending=[False, True, True])
                                ["facet"]))
    fig = batch_grid(data, facets, order, [("energy_mean_j", "energy_std_j", "energy per batch (J)", True),
                                           ("throughput_mean_tok_s", "throughput_std_tok_s", "throughput (tok/s)",
                                            True)],
                     hue_colours=hue_colours, style_of=styles, mark_largest=True,
                     banner="Not measured: " + "; ".join(f"{n['variant']} on {n['hardware']} / {n['model']}"
                                                          for n in notes) + "." if notes else "")
    fits = "; ".join(f"{tex_escape(v)} on {tex_escape(h)} / {tex_escape(mo)}: {int(b)}"
                     for (h, mo, v, _), b in fit.items())
    missing = "; ".join(f"{tex_escape(n['variant'])} on {tex_escape(n['hardware'])} / {tex_escape(n['model'])}"
                        for n in notes)
    caption = (f"{title}: energy per batch and generation throughput with each optimization off (dashed) and on "
               f"(solid), one row per optimization, hardware and model, greedy decoding. "
               f"{shape_note(fixed_input, fixed_output)} The ring marks the largest batch that ran ({fits}); "
               "crosses mark batch sizes that ran out of memory."
               + (f" Not measured, so without a comparison: {missing}." if notes else "")
               + (" On a CPU, vllm-cudagraph is vLLM's compiled path (torch.compile), not CUDA graphs, and its "
                  "panel says so." if on_cpu.any() else "")
               + " " + cells_note(data) + " " + source_note(data["energy_source"]) + _invalid_note(n_invalid))
    out = with_notes(data.drop(columns=["facet", "hue"]), notes)
    return save(fig, out, files, caption)


def _unpaired(data: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Figure 5's rows without the panels of an optimization measured for other models only, and a note
    for each (hardware, model) that has one setting of an optimization but not the other."""
    notes, without_on = [], []
    for (hw, model, opt), grp in data.groupby(["hardware", "model", "optimization"]):
        for o, a, b in (COMPILE, CUDA_GRAPHS):
            if o == opt:
                if b not in set(grp["variant"]) and (data["variant"] == b).any():
                    # The optimization was measured, just not for this model: no panel of its own.
                    without_on.append((hw, model, opt))
                    continue
                for v in (a, b):
                    if v not in set(grp["variant"]):
                        notes.append(note_row(data.columns, f"not measured: nothing to compare {opt} with",
                                               hardware=hw, model=model, variant=v, optimization=opt))
    if without_on:
        drop = pd.Series(list(zip(data["hardware"], data["model"], data["optimization"]))).isin(without_on).to_numpy()
        data = data[~drop]
    return data, notes


# Figure 6 -----------------------------------------------------------------------------------------------


def fig_tensor_parallel(measurements: pd.DataFrame, fixed_input: int, fixed_output: int,
                        files: FigureFiles) -> list[Path]:
    """Figure 6: tensor parallel 1/2/4: energy and latency per batch against batch size, for each variant
    measured at more than one tensor-parallel size (``-tpN`` suffix or ``tensor_parallel`` column)."""
    setup_style()
    m = measurements
    if not m.empty:
        m = m[(m["decoding"] == "greedy") & ~m["variant"].astype(str).map(is_online)]
        m = m.assign(tensor_parallel=tensor_parallel(m), base_variant=m["variant"].map(base_variant))
    _, n_invalid = usable(at_fixed_shape_or_empty(m, fixed_input, fixed_output))
    data = batch_table(m, fixed_input, fixed_output)
    title = "Tensor parallelism against batch size (Figure 6)"
    extra = ["base_variant", "tensor_parallel", "vs_tp1_energy_pct", "vs_tp1_latency_pct"]
    if not data.empty:
        tp = m.drop_duplicates("variant").set_index("variant")[["tensor_parallel", "base_variant"]]
        data = data.join(tp, on="variant")
        sizes = data.groupby(["hardware", "model", "base_variant"])["tensor_parallel"].agg(["nunique", "max"])
        keep = sizes[(sizes["max"] > 1)].index
        data = data.set_index(["hardware", "model", "base_variant"]).loc[keep].reset_index() if len(keep) else \
            data.iloc[0:0]
    if data.empty:
        return save_no_data(files, list(batch_table(pd.DataFrame(), 0, 0).columns) + extra,
                             "no tensor-parallel cells (variants such as vllm-eager-tp2, vllm-cudagraph-tp4) were "
                             "measured; they need a machine with 2 or 4 GPUs", title, figure_context(measurements))
    keys = ["hardware", "model", "base_variant", "decoding", "batch_size"]
    tp1 = data["tensor_parallel"] == 1
    data["vs_tp1_energy_pct"] = _pct_vs(data, tp1, keys, "energy_mean_j").where(~tp1)
    data["vs_tp1_latency_pct"] = _pct_vs(data, tp1, keys, "duration_mean_s").where(~tp1)
    notes = [note_row(data.columns, "tensor parallel 1 not measured: no baseline", hardware=h, model=mo,
                       base_variant=b)
             for (h, mo, b), g in data.groupby(["hardware", "model", "base_variant"])
             if not (g["tensor_parallel"] == 1).any()]
    data["facet"] = [f"{b}\n{h}, {mo}" for h, mo, b in zip(data["hardware"], data["model"], data["base_variant"])]
    data["hue"] = data["tensor_parallel"]
    order = sorted(data["tensor_parallel"].unique())
    facets = list(dict.fromkeys(data.sort_values(["hardware", "model", "base_variant"])["facet"]))
    fig = batch_grid(data, facets, order, [("energy_mean_j", "energy_std_j", "energy per batch (J)", True),
                                           ("duration_mean_s", "duration_std_s", "latency per batch (s)", True)],
                     hue_labels={t: f"tensor parallel {t}" for t in order})
    caption = (f"{title}: energy (all GPUs of the cell) and latency per batch at tensor-parallel sizes "
               f"{', '.join(str(t) for t in order)}, greedy decoding. {shape_note(fixed_input, fixed_output)}"
               + (" Tensor parallel 1 was not measured for some variants: no baseline there." if notes else "")
               + " " + cells_note(data) + " " + source_note(data["energy_source"]) + _invalid_note(n_invalid))
    out = with_notes(data.drop(columns=["facet", "hue"]), notes)
    return save(fig, out, files, caption)


# Figure 9 -----------------------------------------------------------------------------------------------
