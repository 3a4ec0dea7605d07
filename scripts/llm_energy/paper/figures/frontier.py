"""The energy-latency frontier of online serving: energy per request against p90 latency, each serving
setting a point and the Pareto front drawn (``llm_energy.online.frontier``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from llm_energy.online.frontier import FRONT_METRICS, front_table
from llm_energy.paper.figures.batch import save_no_data
from llm_energy.paper.figures.online import NO_SERVING, RATE_MARKERS, status_marks
from llm_energy.paper.figures.style import (
    ESTIMATED,
    PANEL_H_IN,
    PANEL_W_IN,
    FigureFiles,
    cells_note,
    colours,
    no_data_panel,
    plain_log_labels,
    plt,
    save,
    setup_style,
    shared_legend,
    source_note,
)

FRONT_TITLE = "Energy per request against p90 latency of online serving"
FRONT_LABELS = {"tpot_p90_s": "time per output token p90 (s)", "e2e_p90_s": "end-to-end latency p90 (s)"}


def _setting_label(r) -> str:
    batch = "" if pd.isna(r["batch_size"]) else f", batch {int(r['batch_size'])}"
    return f"{r['hardware']}, {r['model']}, {r['variant']}{batch}"


def _front_panel(ax, part: pd.DataFrame, hue_colours: dict, title: str, xlabel: str, handles: dict) -> None:
    """Every setting's points (rate written beside each), the Pareto front as a step line."""
    pts = part.dropna(subset=["latency_s", "energy_per_request_j"])
    if pts.empty:
        no_data_panel(ax, f"{title}:\nno data")
        return
    for label, grp in pts.groupby("setting", sort=True):
        estimated = bool((grp["energy_source"] == ESTIMATED).any())
        status_marks(ax, grp, "latency_s", "energy_per_request_j", hue_colours[label], estimated)
        handles.setdefault(label, Line2D([], [], color=hue_colours[label], marker="o", linestyle="", label=label))
        for r in grp.itertuples():
            ax.annotate(f"{r.rate_per_s:g}/s", (r.latency_s, r.energy_per_request_j), fontsize=5,
                        xytext=(3, 2), textcoords="offset points", color="dimgrey")
    front = pts[pts["on_front"].astype(bool)].sort_values("latency_s")
    if not front.empty:
        h = ax.step(front["latency_s"], front["energy_per_request_j"], where="post", color="black", linewidth=1.0,
                    label="Pareto front (least energy for a latency)")[0]
        handles.setdefault(h.get_label(), h)
    for axis, col in (("x", "latency_s"), ("y", "energy_per_request_j")):
        v = pts[col]
        if v.min() > 0 and v.max() / v.min() >= 4:
            (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
            plain_log_labels(ax, axis)
    ax.set_xlabel(xlabel, fontsize="small")
    ax.set_ylabel("energy per request (J)", fontsize="small")
    ax.tick_params(labelsize="x-small")
    ax.set_title(title, fontsize="small")


def fig_energy_latency_frontier(serving: pd.DataFrame, files: FigureFiles) -> list[Path]:
    """Energy per request against p90 latency (time per output token; end to end) of every setting of
    the serving rate sweep (rate, stack, batch limit), one row of panels per workload, with the Pareto
    front (least energy for a given latency) as a step line; the CSV marks ``on_front``."""
    setup_style()
    data = front_table(serving, FRONT_METRICS)
    if data.empty:
        return save_no_data(files, list(data.columns), NO_SERVING, FRONT_TITLE, pd.DataFrame())
    data["setting"] = [_setting_label(r) for r in data.to_dict("records")]
    settings = sorted(data["setting"].unique())
    hue_colours = dict(zip(settings, colours(len(settings))))
    workloads = list(dict.fromkeys(data["workload"]))
    fig, axes = plt.subplots(len(workloads), len(FRONT_METRICS), squeeze=False,
                             figsize=(PANEL_W_IN * len(FRONT_METRICS) + 0.4, PANEL_H_IN * len(workloads) + 0.2))
    handles: dict = {}
    for i, w in enumerate(workloads):
        for j, metric in enumerate(FRONT_METRICS):
            part = data[(data["workload"] == w) & (data["metric"] == metric)]
            _front_panel(axes[i][j], part, hue_colours, str(w), FRONT_LABELS[metric], handles)
    fig.tight_layout()
    legend = list(handles.values())
    if (data["status"] != "ok").any():
        legend += [Line2D([], [], color="grey", marker=RATE_MARKERS[s], markerfacecolor="white", linestyle="",
                          label=f"{s}") for s in ("saturated", "timeout") if (data["status"] == s).any()]
    shared_legend(fig, legend, ncol=min(len(legend), 2))
    n_off = int((data["note"] != "").sum())
    caption = (f"{FRONT_TITLE}: each point is one setting of the serving rate sweep (stack, server batch limit "
               "and request rate, written beside it), Poisson arrivals of a seeded sample of the trace; left "
               "time per output token p90, right end-to-end p90. The step line is the Pareto front: the least "
               "energy per request reachable at or below a latency. Squares: arrivals outpaced the server "
               "(saturated, still measured); crosses: the window timed out (partial values, never on the front)."
               + (f" {n_off} row(s) of the data cannot be on the front (see its note column)." if n_off else "")
               + " " + cells_note(data) + " " + source_note(data["energy_source"]))
    return save(fig, data.drop(columns=["setting"]), files, caption)
