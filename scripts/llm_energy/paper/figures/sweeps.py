"""Figures 2 and 10: prefill energy against input length and decode energy against output length.

Figure 2 is the paper's main stack, vLLM; Figure 10 (the paper's appendix) the same for PyTorch with
HF transformers. Both plot the controlled sweep points (rows whose ``role`` has ``sweep``) of
greedy, tensor-parallel-1, offline cells.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from llm_energy.paper.figures.data import single_device_offline, usable
from llm_energy.paper.figures.style import (
    ESTIMATED,
    PANEL_H_IN,
    PANEL_W_IN,
    FigureFiles,
    cells_note,
    colours,
    errorbar,
    estimated_handle,
    no_data_panel,
    plain_log_labels,
    plt,
    save,
    setup_style,
    shared_legend,
    source_note,
    tex_escape,
)

FRAMEWORK_NAMES = {"vllm": "vLLM", "transformers": "PyTorch + HF transformers"}
COLUMNS = ["panel", "hardware", "model", "variant", "decoding", "batch_size", "x", "energy_source",
           "energy_mean_j", "energy_std_j", "n_repeats", "note"]


def prefill_decode_table(measurements: pd.DataFrame, fixed_input: int, fixed_output: int,
                         framework: str) -> tuple[pd.DataFrame, int]:
    """The plotted data of Figure 2 / 10 and the number of rows left out for failing validation.

    ``prefill`` rows: points at output ``fixed_output``, x = input length, y = prefill energy;
    ``decode`` rows: points at input ``fixed_input``, x = output length, y = decode energy.
    Only variants whose name starts with ``framework``, greedy decoding, sweep points, and only cells
    that swept lengths (a cell measured at the fixed shape alone, for the batch-size figures, has
    one point per batch size: no line to draw).
    """
    m = measurements
    if not m.empty:
        m = m[m["variant"].astype(str).str.startswith(framework) & (m["decoding"] == "greedy")]
        if "role" in m:
            m = m[m["role"].astype(str).str.split(",").map(lambda r: "sweep" in r)]
        m = single_device_offline(m)
    if not m.empty:
        lengths = m.groupby(["hardware", "model", "variant", "decoding"])[["input_len", "output_len"]] \
            .transform("nunique")
        m = m[(lengths["input_len"] > 1) | (lengths["output_len"] > 1)]
    m, n_invalid = usable(m)
    if m.empty:
        return pd.DataFrame(columns=COLUMNS), n_invalid
    m = m.assign(energy_source=m["energy_source"].fillna("unknown"))
    pre = m[m["output_len"] == fixed_output].assign(panel="prefill", x=lambda d: d["input_len"],
                                                    y=lambda d: d["prefill_energy_j"])
    dec = m[m["input_len"] == fixed_input].assign(panel="decode", x=lambda d: d["output_len"],
                                                  y=lambda d: d["decode_energy_j"])
    long = pd.concat([pre, dec])
    data = (long.groupby(["panel", "hardware", "model", "variant", "decoding", "batch_size", "x", "energy_source"])
            ["y"].agg(energy_mean_j="mean", energy_std_j="std", n_repeats="count").reset_index())
    data["energy_std_j"] = data["energy_std_j"].fillna(0.0)
    data["note"] = ""
    return data[COLUMNS], n_invalid


def fig_prefill_decode(measurements: pd.DataFrame, fixed_input: int, fixed_output: int, files: FigureFiles,
                       framework: str = "vllm", number: str = "2") -> list[Path]:
    """Figure 2 (``framework="vllm"``) or 10 (``"transformers"``): prefill and decode energy, log-log,
    one line per batch size (colour) and variant (line style); a row of two panels per hardware and model."""
    setup_style()
    data, n_invalid = prefill_decode_table(measurements, fixed_input, fixed_output, framework)
    fw = FRAMEWORK_NAMES.get(framework, framework)
    if data.empty:
        why = f"no valid greedy sweep points of a {fw} variant ({framework}-*) were measured"
        data = pd.DataFrame([{**{c: "" for c in COLUMNS}, "note": f"no data: {why}"}])[COLUMNS]
        fig, ax = plt.subplots(figsize=(2 * PANEL_W_IN, PANEL_H_IN))
        no_data_panel(ax, f"No data: {why}.")
        caption = f"Prefill and decode energy with {fw} (Figure {number} of the paper): no data; {tex_escape(why)}."
        return save(fig, data, files, caption)
    facets = list(data[["hardware", "model"]].drop_duplicates().sort_values(["hardware", "model"])
                  .itertuples(index=False, name=None))
    batch_colour = dict(zip(sorted(data["batch_size"].unique()), colours(data["batch_size"].nunique())))
    variants = sorted(data["variant"].unique())
    styles = dict(zip(variants, ["-", "--", ":", "-."] * 3))
    fig, axes = plt.subplots(len(facets), 2, figsize=(2 * PANEL_W_IN + 0.3, PANEL_H_IN * len(facets) + 0.3),
                             squeeze=False)
    for row, (hw, model) in enumerate(facets):
        for col, (panel, xlabel) in enumerate((("prefill", f"input length (tokens); output {fixed_output}"),
                                               ("decode", f"output length (tokens); input {fixed_input}"))):
            ax = axes[row][col]
            sub = data[(data["panel"] == panel) & (data["hardware"] == hw) & (data["model"] == model)
                       & (data["energy_mean_j"] > 0)]
            if sub.empty:
                no_data_panel(ax, f"no {panel} points")
                continue
            for (variant, bs, src), grp in sub.groupby(["variant", "batch_size", "energy_source"]):
                grp = grp.sort_values("x")
                errorbar(ax, grp["x"], grp["energy_mean_j"], grp["energy_std_j"], batch_colour[bs],
                         src == ESTIMATED, linestyle=styles[variant])
            ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=f"{panel} energy per batch (J)")
            plain_log_labels(ax)
            plain_log_labels(ax, "x")
            title = panel + (f": {hw}, {model}" if len(facets) > 1 else "")
            ax.set_title(title, fontsize="small")
    fig.tight_layout()
    # Colour is the batch size, line style the variant: one legend entry for each.
    legend = [Line2D([], [], color=c, marker="o", label=f"batch {bs}") for bs, c in batch_colour.items()]
    if len(variants) > 1:
        legend += [Line2D([], [], color="grey", linestyle=styles[v], label=v) for v in variants]
    if (data["energy_source"] == ESTIMATED).any():
        legend.append(estimated_handle())
    shared_legend(fig, legend, ncol=min(len(legend), 3))
    caption = (f"Prefill and decode energy per batch with {fw} (Figure {number} of the paper; Figure 2 shows "
               "vLLM, the paper's main stack, Figure 10 PyTorch with HF transformers): prefill energy against "
               f"input length at output {fixed_output}, and decode energy (full run minus a one-token run) "
               f"against output length at input {fixed_input}, per batch size, log-log, greedy decoding, "
               "controlled sweep points; mean over repeats with their standard deviation. "
               f"Variants: {tex_escape(', '.join(variants))}. "
               + cells_note(data) + " " + source_note(data["energy_source"])
               + f" {n_invalid} measurement row(s) failed validation and are left out.")
    return save(fig, data, files, caption)
