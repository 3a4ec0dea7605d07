"""Energy and latency of single requests in the serving rate sweep (``results/requests/``).

Per online cell and workload one row of panels: (a) the distribution of energy per request at each
rate (empirical CDF, log x), (b) energy per request against the request's output tokens, coloured by
rate, (c) the distribution of time to first token at each rate (CDF).

A request's energy is its share of the steady window's metered energy, split over the tokens it
processed inside the window, a prompt token weighing ``prompt_weight`` output tokens (the cell's
measured prefill/decode split; ``energy_share_j``, written by ``llm_energy.online.sweep``): an
apportionment of a measured total, not a per-request measurement. Only requests with tokens inside
the window (``tokens_in_window > 0``) have a share, so only they are in (a) and (b); (c) holds every
request that got a first token. The CSV holds every plotted point (``panel``: ``energy_cdf``,
``energy_vs_output``, ``ttft_cdf``) and, per cell, workload and rate, a ``note`` row for the requests
left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from llm_energy.paper.figures.batch import save_no_data
from llm_energy.paper.figures.style import (
    ESTIMATED,
    PANEL_H_IN,
    PANEL_W_IN,
    FigureFiles,
    cells_note,
    colours,
    no_data_panel,
    plain_log_labels,
    plain_number,
    plt,
    save,
    setup_style,
    shared_legend,
    source_note,
    tex_escape,
)

TITLE = "Energy and time to first token of single requests in online serving"
NO_REQUESTS = ("no per-request table of the serving rate sweep (results/requests/; vllm-online cells with config "
               "online.rates)")
KEYS = ["hardware", "model", "variant", "decoding", "workload"]
COLUMNS = ["panel", *KEYS, "batch_size", "energy_source", "rate_per_s", "request", "input_tokens", "output_tokens",
           "tokens_in_window", "prefill_energy_j", "decode_energy_j", "prompt_weight", "energy_share_j", "ttft_s",
           "cdf", "note"]
PANELS = (("energy_cdf", "(a) energy per request"), ("energy_vs_output", "(b) energy vs output tokens"),
          ("ttft_cdf", "(c) time to first token"))
LONG_QUANTILE = 0.75  # the caption's "longest quarter" of the requests by output tokens


def _ecdf(part: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows sorted by ``column`` with ``cdf`` = the share of rows at or below each (the last is 1)."""
    part = part.sort_values([column, "request"], kind="stable")
    return part.assign(cdf=np.arange(1, len(part) + 1) / len(part))


def _left_out(n_zero: int, n_bad_energy: int, n_no_token: int) -> str:
    parts = []
    if n_zero:
        parts.append(f"{n_zero} request(s) with no tokens inside the steady window left out of panels a and b")
    if n_bad_energy:
        parts.append(f"{n_bad_energy} request(s) with tokens in the window but no positive energy share left out "
                     "of panels a and b")
    if n_no_token:
        parts.append(f"{n_no_token} request(s) without a first token (failed or timed out) left out of panel c")
    return "; ".join(parts)


def request_points(requests: pd.DataFrame) -> pd.DataFrame:
    """Every point the figure plots (columns ``COLUMNS``), and a ``note`` row per cell, workload and rate
    that left requests out."""
    if requests is None or requests.empty:
        return pd.DataFrame(columns=COLUMNS)
    r = requests.copy()
    for c in ("batch_size", "energy_source", "input_tokens"):
        if c not in r:
            r[c] = np.nan
    r["energy_source"] = r["energy_source"].fillna("unknown")
    tokens = pd.to_numeric(r["tokens_in_window"], errors="coerce").fillna(0)
    energy = pd.to_numeric(r["energy_share_j"], errors="coerce")
    in_window = tokens > 0
    has_energy = in_window & (energy > 0)  # NaN compares False: a log axis cannot show it
    has_ttft = pd.to_numeric(r["ttft_s"], errors="coerce").notna()
    parts, notes = [], []
    for key, grp in r.groupby(KEYS + ["rate_per_s"], sort=False, dropna=False):
        e = grp[has_energy[grp.index]]
        parts += [_ecdf(e, "energy_share_j").assign(panel="energy_cdf"), e.assign(panel="energy_vs_output"),
                  _ecdf(grp[has_ttft[grp.index]], "ttft_s").assign(panel="ttft_cdf")]
        n_zero = int((~in_window[grp.index]).sum())
        note = _left_out(n_zero, len(grp) - n_zero - len(e), int((~has_ttft[grp.index]).sum()))
        if note:
            first = grp.iloc[0]
            notes.append({**dict(zip(KEYS + ["rate_per_s"], key)), "panel": "note", "batch_size": first["batch_size"],
                          "energy_source": first["energy_source"], "note": note})
    parts = [p.assign(note="") for p in parts if not p.empty] + ([pd.DataFrame(notes)] if notes else [])
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True).reindex(columns=COLUMNS)
    for c in ("batch_size", "request", "input_tokens", "output_tokens", "tokens_in_window"):
        out[c] = pd.to_numeric(out[c], errors="coerce").round().astype("Int64")
    return out


def long_share(points: pd.DataFrame) -> dict[tuple, float]:
    """Per cell and workload: the share (%) of the plotted energy that the longest quarter of its requests
    (output tokens at or above the 75th percentile, over every rate) carries."""
    shares = {}
    for key, g in points[points["panel"] == "energy_vs_output"].groupby(KEYS, sort=False):
        out = g["output_tokens"].astype(float)
        total = g["energy_share_j"].sum()
        if total > 0:
            shares[key] = 100.0 * g.loc[out >= out.quantile(LONG_QUANTILE), "energy_share_j"].sum() / total
    return shares


def _log_axis(ax, axis: str) -> None:
    """A log axis with plain tick labels; one spanning under two decades also labels 2 and 5 x 10^k."""
    from matplotlib.ticker import LogLocator

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    plain_log_labels(ax, axis)
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if 10 <= hi / lo < 100:
        (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))


def _log_if_wide(ax, values: pd.Series, axis: str, span: float = 4.0) -> None:
    v = values[values > 0]
    if len(v) and v.max() / v.min() >= span:
        _log_axis(ax, axis)


def _cdf_panel(ax, part: pd.DataFrame, column: str, rate_colours: dict, dashed: bool, xlabel: str, log: bool):
    for rate, grp in part.groupby("rate_per_s", sort=True):
        ax.plot(grp[column], grp["cdf"], drawstyle="steps-post", color=rate_colours[rate], linewidth=1.1,
                linestyle="--" if dashed else "-")
    if log:
        _log_axis(ax, "x")
    else:
        _log_if_wide(ax, part[column], "x", span=10.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel, fontsize="small")
    ax.set_ylabel("share of requests", fontsize="small")


def _scatter_panel(ax, part: pd.DataFrame, rate_colours: dict, estimated: bool) -> None:
    for rate, grp in part.groupby("rate_per_s", sort=True):
        c = rate_colours[rate]
        ax.scatter(grp["output_tokens"], grp["energy_share_j"], s=7, color=c, alpha=0.75, linewidths=0.6,
                   facecolors="white" if estimated else c, edgecolors=c)
    _log_if_wide(ax, part["output_tokens"].astype(float), "x")
    _log_if_wide(ax, part["energy_share_j"], "y")
    ax.set_xlabel("output tokens of the request", fontsize="small")
    ax.set_ylabel("energy per request (J)", fontsize="small")


def _figure(points: pd.DataFrame, rate_colours: dict):
    groups = list(dict.fromkeys(map(tuple, points[KEYS].itertuples(index=False))))
    fig, axes = plt.subplots(len(groups), len(PANELS), squeeze=False,
                             figsize=(PANEL_W_IN * len(PANELS) + 0.4, PANEL_H_IN * len(groups) + 0.3))
    for row, key in zip(axes, groups):
        grp = points[(points[KEYS] == pd.Series(key, index=KEYS)).all(axis=1)]
        hardware, model, variant, decoding, workload = key
        estimated = bool((grp["energy_source"] == ESTIMATED).any())
        label = f"{workload}: {hardware}, {model}, {variant}" + ("" if decoding == "greedy" else f", {decoding}")
        for ax, (panel, title) in zip(row, PANELS):
            part = grp[grp["panel"] == panel]
            if part.empty:
                no_data_panel(ax, f"{title}:\nno request to plot")
            elif panel == "energy_cdf":
                _cdf_panel(ax, part, "energy_share_j", rate_colours, estimated, "energy per request (J)", True)
            elif panel == "energy_vs_output":
                _scatter_panel(ax, part, rate_colours, estimated)
            else:
                _cdf_panel(ax, part, "ttft_s", rate_colours, False, "time to first token (s)", False)
            ax.set_title(f"{title}\n{label}" if panel == "energy_cdf" else title, fontsize="small")
            ax.tick_params(labelsize="x-small")
    fig.tight_layout()
    legend = [Line2D([], [], color=c, marker="o", markersize=4, label=f"{plain_number(r)} requests/s")
              for r, c in rate_colours.items()]
    if (points["energy_source"] == ESTIMATED).any():
        legend.append(Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="--",
                             label="hollow / dashed: cpu-estimate"))
    shared_legend(fig, legend, ncol=min(len(legend), 4))
    return fig


def _caption(points: pd.DataFrame) -> str:
    parts = [f"{TITLE}, from the serving rate sweep (Poisson arrivals of a seeded sample of the trace), one row "
             "per stack and workload. A request's energy is its share of the steady window's metered energy, "
             "split over the tokens it processed inside the window (its prompt counted at its first token, its "
             "output tokens as they streamed; a prompt token weighs the cell's measured prefill energy per "
             "prompt token over decode energy per output token): an apportionment of the measured window, not a "
             "per-request measurement; a request only partly inside the window carries only its part. (a) "
             "Empirical CDF of energy per request at each rate (log scale); (b) energy per request against the "
             "request's output tokens, coloured by rate; (c) CDF of time to first token at each rate. Panels a and "
             "b hold the requests with tokens inside the window, panel c every request that got a first token."]
    shares = long_share(points)
    if shares:
        each = "; ".join(f"{tex_escape(k[4])} on {tex_escape(k[0])}, {tex_escape(k[1])}, {tex_escape(k[2])}: "
                         f"{v:.0f}\\%" for k, v in shares.items())
        parts.append("The longest quarter of the requests (output tokens at or above the 75th percentile, all "
                     f"rates together) carries this share of the plotted energy: {each}.")
    weights = points.dropna(subset=["prompt_weight"]).groupby(KEYS, sort=False)["prompt_weight"].first()
    if not weights.empty:
        parts.append("Prompt token weight: " + "; ".join(
            f"{tex_escape(k[1])}, {tex_escape(k[2])}: {v:.3g}" for k, v in weights.items()) + ".")
    if (points["panel"] == "note").any():
        parts.append("Requests left out are counted in the note rows of the data.")
    energy = points[points["panel"] != "ttft_cdf"]["energy_source"]
    estimated = " In this figure its energy CDFs are dashed." if (energy == ESTIMATED).any() else ""
    return " ".join(parts) + " " + cells_note(points) + " " + source_note(energy) + estimated


def fig_request_energy(requests: pd.DataFrame, files: FigureFiles) -> list[Path]:
    """Energy per request (distribution per rate; against output tokens) and time to first token
    (distribution per rate) from the per-request tables of the serving rate sweep; a figure that says
    so when there are none."""
    setup_style()
    points = request_points(requests)
    plotted = points[points["panel"] != "note"]
    if plotted.empty:
        why = NO_REQUESTS if points.empty else "no request of the rate sweep got a first token or had tokens " \
                                               "inside the steady window"
        context = requests[["hardware", "model"]] if requests is not None and not requests.empty else pd.DataFrame()
        return save_no_data(files, COLUMNS[:-1], why, TITLE, context)
    rates = sorted(plotted["rate_per_s"].dropna().unique())
    fig = _figure(points, dict(zip(rates, colours(len(rates)))))
    return save(fig, points, files, _caption(points))
