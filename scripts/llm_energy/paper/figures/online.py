"""Figure 9: online against offline serving: energy per request against batch size (the online cell
and its offline twin), and against request rate in the serving rate sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from llm_energy.paper.figures.batch import batch_panel, figure_context, note_row, save_no_data, shape_note, with_notes
from llm_energy.paper.figures.data import (
    batch_table,
    is_online,
)
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

ONLINE_TITLE = "Online against offline serving (Figure 9)"
BATCH_COLS = ["hardware", "model", "decoding", "online_variant", "offline_variant", "batch_size", "energy_source",
              "online_energy_mean_j", "online_energy_std_j", "online_n_repeats", "offline_energy_mean_j",
              "offline_energy_std_j", "offline_n_repeats", "reduction_pct", "reduction_std_pct", "status"]
# The rate sweep's rows beside the offline replay of the same requests (panel "rate" of the CSV).
RATE_COLS = ["hardware", "model", "decoding", "online_variant", "offline_variant", "workload", "rate_per_s",
             "batch_size", "status", "energy_source", "n_requests", "online_energy_per_request_j",
             "offline_energy_per_request_j", "offline_energy_per_request_std_j", "offline_n_runs",
             "offline_n_requests", "offline_batch_size", "reduction_pct", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
             "e2e_p50_s", "e2e_p99_s"]
RATE_LATENCIES = (("e2e_p50_s", "e2e p50", "-"), ("e2e_p99_s", "e2e p99", "--"), ("ttft_p50_s", "TTFT p50", ":"))
RATE_MARKERS = {"ok": "o", "saturated": "s", "timeout": "x"}
NO_SERVING = "no serving rate sweep was measured (vllm-online cells with config online.rates)"
REPLAY_KEYS = ["hardware", "model", "variant", "decoding", "workload"]


def offline_of(online: str) -> str:
    """The offline variant an online one is compared with: same engine settings, static batches."""
    return str(online).replace("online", "eager")


def _online_batch(measurements: pd.DataFrame, fixed_input: int, fixed_output: int):
    """Figure 9's batch panel: the reduction per batch size at the fixed shape (``BATCH_COLS``), its
    notes, and why nothing can be drawn ("" when something can)."""
    data = batch_table(measurements, fixed_input, fixed_output)
    ok = data[data["status"] == "ok"] if not data.empty else data
    online = ok[ok["variant"].astype(str).map(is_online)] if not ok.empty else ok
    if online.empty:
        measured = not measurements.empty and measurements["variant"].astype(str).map(is_online).any()
        why = ("the online cells have no valid row at the fixed shape (see their invalid_reason)" if measured
               else "no online cell (vllm-online) was measured")
        return pd.DataFrame(columns=BATCH_COLS), [], why
    online = online.assign(offline_variant=online["variant"].map(offline_of))
    keys = ["hardware", "model", "decoding", "batch_size"]
    offline = ok.rename(columns={"variant": "offline_variant"})
    merged = online.merge(offline, on=keys + ["offline_variant"], how="left", suffixes=("_on", "_off"))
    r = merged["energy_mean_j_on"] / merged["energy_mean_j_off"]
    rel = np.sqrt((merged["energy_std_j_on"] / merged["energy_mean_j_on"]) ** 2
                  + (merged["energy_std_j_off"] / merged["energy_mean_j_off"]) ** 2)
    either_estimated = (merged["energy_source_on"] == ESTIMATED) | (merged["energy_source_off"] == ESTIMATED)
    out = pd.DataFrame({
        "hardware": merged["hardware"], "model": merged["model"], "decoding": merged["decoding"],
        "online_variant": merged["variant"], "offline_variant": merged["offline_variant"],
        "batch_size": merged["batch_size"], "energy_source": merged["energy_source_on"].where(~either_estimated,
                                                                                              ESTIMATED),
        "online_energy_mean_j": merged["energy_mean_j_on"], "online_energy_std_j": merged["energy_std_j_on"],
        "online_n_repeats": merged["n_repeats_on"], "offline_energy_mean_j": merged["energy_mean_j_off"],
        "offline_energy_std_j": merged["energy_std_j_off"], "offline_n_repeats": merged["n_repeats_off"],
        "reduction_pct": 100.0 * (1.0 - r), "reduction_std_pct": 100.0 * r * rel,
        "status": np.where(merged["energy_mean_j_off"].isna(), "no offline point", "ok"),
    })[BATCH_COLS]
    notes = [note_row(BATCH_COLS, f"{v} not measured: no offline baseline", offline_variant=v)
             for v in sorted(set(out["offline_variant"]) - set(ok["variant"]))]
    why = "" if (out["status"] == "ok").any() else ("online cells were measured but no offline cell (vllm-eager) at "
                                                    "the same batch sizes")
    return out, notes, why


def offline_per_request(replay: pd.DataFrame | None) -> pd.DataFrame:
    """Energy per request of the offline replay of each workload and stack: replay_energy_j / n_requests,
    mean and sample std over its metered runs."""
    cols = REPLAY_KEYS + ["offline_energy_per_request_j", "offline_energy_per_request_std_j", "offline_n_runs",
                          "offline_n_requests", "offline_batch_size", "offline_energy_source"]
    if replay is None or replay.empty or not set(REPLAY_KEYS + ["replay_energy_j", "n_requests"]) <= set(replay):
        return pd.DataFrame(columns=cols)
    r = replay.assign(per_request=replay["replay_energy_j"] / replay["n_requests"])
    for c in ("batch_size", "energy_source"):
        r[c] = r[c] if c in r else np.nan
    out = r.groupby(REPLAY_KEYS).agg(
        offline_energy_per_request_j=("per_request", "mean"), offline_energy_per_request_std_j=("per_request", "std"),
        offline_n_runs=("per_request", "size"), offline_n_requests=("n_requests", "first"),
        offline_batch_size=("batch_size", "first"), offline_energy_source=("energy_source", "first")).reset_index()
    out["offline_energy_per_request_std_j"] = out["offline_energy_per_request_std_j"].fillna(0.0)
    return out[cols]


def _rate_note(r) -> str:
    notes = []
    if pd.isna(r.offline_energy_per_request_j):
        notes.append(f"no offline replay of {r.workload} with {r.offline_variant} (replay.enabled and a grid cell "
                     f"{r.offline_variant})")
    elif pd.notna(r.n_requests) and r.offline_n_requests != r.n_requests:
        notes.append(f"offline replay served {r.offline_n_requests:.0f} requests, online {r.n_requests:.0f}")
    if r.status == "timeout":
        notes.append("timeout: the window hit its time limit, values partial")
    return "; ".join(notes)


def serving_vs_offline(serving: pd.DataFrame | None, replay: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """Figure 9's rate panels: each serving row (``RATE_COLS``) beside the offline replay's energy per
    request of the same workload and stack (:func:`offline_of`), and why nothing can be drawn ("" when
    something can). ``note`` says what was not measured."""
    if serving is None or serving.empty:
        return pd.DataFrame(columns=RATE_COLS + ["note"]), NO_SERVING
    s = serving.assign(offline_variant=serving["variant"].map(offline_of))
    for c in set(RATE_COLS) - {"online_variant", "online_energy_per_request_j"} - set(s):
        s[c] = np.nan
    off = offline_per_request(replay).rename(columns={"variant": "offline_variant"})
    m = s.drop(columns=[c for c in off if c.startswith("offline_") and c != "offline_variant"], errors="ignore")
    m = m.merge(off, on=["hardware", "model", "decoding", "workload", "offline_variant"], how="left")
    m["online_variant"], m["online_energy_per_request_j"] = m["variant"], m["energy_per_request_j"]
    estimated = (m["energy_source"] == ESTIMATED) | (m["offline_energy_source"] == ESTIMATED)
    m["energy_source"] = m["energy_source"].where(~estimated, ESTIMATED)
    m["reduction_pct"] = 100.0 * (1.0 - m["online_energy_per_request_j"] / m["offline_energy_per_request_j"])
    out = m[RATE_COLS].sort_values(["hardware", "model", "online_variant", "decoding", "workload", "rate_per_s"])
    out = out.reset_index(drop=True)
    out["note"] = [_rate_note(r) for r in out.itertuples()]
    return out, ""


def _rate_axis(ax, rates) -> None:
    """Request rate on x: log when the rates span 4x or more, a tick at each rate swept."""
    rates = sorted(set(pd.Series(rates, dtype=float).dropna()))
    if rates and rates[0] > 0 and rates[-1] / rates[0] >= 4:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    if rates:
        ax.xaxis.set_major_locator(FixedLocator(rates))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: plain_number(v)))
    ax.set_xlabel("request rate (requests/s)", fontsize="small")
    ax.tick_params(labelsize="x-small")


def status_marks(ax, grp: pd.DataFrame, x: str, y: str, colour, estimated: bool) -> None:
    """Points by status: circles ok, squares saturated, crosses timeout; hollow when estimated or not ok."""
    for status, sub in grp.groupby("status", dropna=False):
        ax.plot(sub[x], sub[y], linestyle="", marker=RATE_MARKERS.get(status, "^"), markersize=4,
                color=colour, markerfacecolor="white" if estimated or status != "ok" else colour)


def _energy_rate_panel(ax, grp: pd.DataFrame, title: str, handles: dict) -> None:
    """Online energy per request against rate, the offline replay's as a dashed line."""
    on_colour, off_colour = colours(1)[0], "dimgrey"
    pts = grp.dropna(subset=["online_energy_per_request_j"])
    estimated = bool((grp["energy_source"] == ESTIMATED).any())
    variant = grp["online_variant"].iloc[0]
    whole = pts[pts["status"] != "timeout"]  # a timed-out window's partial value is marked, not joined
    h = ax.plot(whole["rate_per_s"], whole["online_energy_per_request_j"], color=on_colour, linewidth=1.2,
                label=f"online ({variant}), per rate")[0]
    handles.setdefault(h.get_label(), h)
    status_marks(ax, pts, "rate_per_s", "online_energy_per_request_j", on_colour, estimated)
    off = grp.dropna(subset=["offline_energy_per_request_j"])
    if not off.empty:
        r = off.iloc[0]
        h = ax.axhline(r["offline_energy_per_request_j"], color=off_colour, linestyle="--", linewidth=1.0,
                       label=f"offline replay ({r['offline_variant']}), same requests")
        handles.setdefault(h.get_label(), h)
    else:
        ax.text(0.02, 0.97, "no offline replay", transform=ax.transAxes, ha="left", va="top", fontsize="x-small")
    _rate_axis(ax, grp["rate_per_s"])
    ax.set_ylabel("energy per request (J)", fontsize="small")
    ax.set_title(title, fontsize="small")


def _latency_rate_panel(ax, grp: pd.DataFrame, title: str, handles: dict) -> None:
    """End-to-end p50 and p99 and TTFT p50 against rate."""
    for (col, label, style), colour in zip(RATE_LATENCIES, colours(len(RATE_LATENCIES) + 1)[1:]):
        pts = grp.dropna(subset=[col])
        if pts.empty:
            continue
        whole = pts[pts["status"] != "timeout"]
        h = ax.plot(whole["rate_per_s"], whole[col], color=colour, linestyle=style, linewidth=1.2, label=label)[0]
        handles.setdefault(label, h)
        status_marks(ax, pts, "rate_per_s", col, colour, False)
    if not ax.lines:
        no_data_panel(ax, f"{title}:\nno latency recorded")
        return
    ax.set_yscale("log")
    plain_log_labels(ax)
    _rate_axis(ax, grp["rate_per_s"])
    ax.set_ylabel("latency (s)", fontsize="small")
    ax.set_title(title, fontsize="small")


def _rate_title(hardware, model, variant, decoding, workload) -> str:
    return f"{workload}: {hardware}, {model}" + ("" if decoding == "greedy" else f", {decoding}")


def _online_panels(batch: pd.DataFrame, batch_why: str, rate: pd.DataFrame, rate_why: str) -> list[tuple]:
    """What each panel of Figure 9 draws: ("batch", facet), ("energy"/"latency", serving key) or
    ("none", why)."""
    specs = [("batch", f) for f in dict.fromkeys(batch["facet"])] if not batch_why else [("none", batch_why)]
    keys = ["hardware", "model", "online_variant", "decoding", "workload"]
    if rate_why:
        return specs + [("none", rate_why)]
    for key in dict.fromkeys(map(tuple, rate[keys].itertuples(index=False))):
        specs += [("energy", key), ("latency", key)]
    return specs


def _online_figure(batch: pd.DataFrame, batch_why: str, rate: pd.DataFrame, rate_why: str):
    """Figure 9: the batch panels (reduction against batch size), then per serving cell and workload
    energy per request and latency against rate; a part without data is one panel that says why."""
    specs = _online_panels(batch, batch_why, rate, rate_why)
    ncols = min(len(specs), 3)
    nrows = -(-len(specs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_W_IN * ncols + 0.4, PANEL_H_IN * nrows + 0.2),
                             squeeze=False)
    handles: dict = {}
    order = sorted(batch["hue"].unique()) if not batch_why else []
    style = {"colours": dict(zip(order, colours(len(order)))), "labels": {h: h for h in order}, "markers": {},
             "lines": {}}
    keys = ["hardware", "model", "online_variant", "decoding", "workload"]
    for (kind, what), ax in zip(specs, axes.flat):
        if kind == "none":
            no_data_panel(ax, f"No data: {what}.")
        elif kind == "batch":
            batch_panel(ax, batch[batch["facet"] == what], what, ("reduction_pct", "reduction_std_pct",
                         "energy reduction (%)", False), order, style, handles, False,
                         "above 0: online uses less energy")
        else:
            grp = rate[(rate[keys] == pd.Series(what, index=keys)).all(axis=1)]
            draw = _energy_rate_panel if kind == "energy" else _latency_rate_panel
            draw(ax, grp, _rate_title(*what), handles)
    for ax in list(axes.flat)[len(specs):]:
        ax.set_visible(False)
    fig.tight_layout()
    legend = list(handles.values())
    if not rate_why and (rate["status"] != "ok").any():
        legend += [Line2D([], [], color="grey", marker=RATE_MARKERS[s], markerfacecolor="white", linestyle="",
                          label=lab) for s, lab in (("saturated", "square: saturated (requests queued)"),
                                                    ("timeout", "x: timeout (values partial)"))
                   if (rate["status"] == s).any()]
    shared_legend(fig, legend, ncol=min(len(legend), 3))
    return fig


def _online_caption(batch: pd.DataFrame, batch_why: str, rate: pd.DataFrame, rate_why: str, fixed_input: int,
                    fixed_output: int) -> str:
    parts = [f"{ONLINE_TITLE}: online serving with continuous batching against offline static batches on the "
             "same engine."]
    if batch_why:
        parts.append(f"Against batch size: no data; {tex_escape(batch_why)}.")
    else:
        parts.append("Against batch size (online: the most requests in flight): energy saved, 100 $\\times$ (1 "
                     "$-$ online / offline energy per batch); above zero online saves energy; error bars propagate "
                     f"the standard deviations of both means. {shape_note(fixed_input, fixed_output)}")
    if rate_why:
        parts.append(f"Against request rate: no data; {tex_escape(rate_why)}.")
    else:
        workloads = ", ".join(tex_escape(w) for w in sorted(rate["workload"].astype(str).unique()))
        parts.append(f"Against request rate (Poisson arrivals of a seeded sample of {workloads}): energy per "
                     "request of the steady-state window, with the offline replay of the same sample (dashed: "
                     "energy per run / requests, mean over runs), and end-to-end p50 and p99 and time-to-first-"
                     "token p50 latency; squares: arrivals outpaced the server (saturated); crosses: the window "
                     "timed out (partial values).")
        if rate["note"].str.contains("no offline replay").any():
            parts.append("Some workloads have no offline replay (the note column of the data says which).")
    both = pd.concat([batch, rate], ignore_index=True)
    return " ".join(parts) + " " + cells_note(both) + " " + source_note(both["energy_source"])


def fig_online(measurements: pd.DataFrame, fixed_input: int, fixed_output: int, files: FigureFiles,
               serving: pd.DataFrame | None = None, replay: pd.DataFrame | None = None) -> list[Path]:
    """Figure 9: online serving (continuous batching; ``vllm-online``) against offline batches with the
    same engine settings (``vllm-eager``). Against batch size: the energy reduction 100 x (1 - online /
    offline) at the fixed shape, its spread propagated from both means' standard deviations to first
    order. Against request rate (the serving rate sweep): energy per request beside the offline
    replay's of the same requests, and latency. The CSV's ``panel`` says which rows are which."""
    setup_style()
    batch, notes, batch_why = _online_batch(measurements, fixed_input, fixed_output)
    rate, rate_why = serving_vs_offline(serving, replay)
    if batch_why and rate_why:
        return save_no_data(files, ["panel"] + BATCH_COLS + [c for c in RATE_COLS if c not in BATCH_COLS],
                             f"{batch_why}; {rate_why}", ONLINE_TITLE, figure_context(measurements))
    plot = batch[batch["status"] == "ok"]
    plot = plot.assign(facet=[f"{h}, {m}" + ("" if d == "greedy" else f", {d}")
                              for h, m, d in zip(plot["hardware"], plot["model"], plot["decoding"])],
                       hue=plot["online_variant"] + " vs " + plot["offline_variant"])
    fig = _online_figure(plot, batch_why, rate, rate_why)
    caption = _online_caption(plot, batch_why, rate, rate_why, fixed_input, fixed_output)
    batch_rows = with_notes(batch, notes + ([note_row(BATCH_COLS, f"no data: {batch_why}")] if batch_why else []))
    rate_rows = rate if not rate_why else pd.DataFrame([note_row(RATE_COLS, f"no data: {rate_why}")])
    out = pd.concat([batch_rows.assign(panel="batch"), rate_rows.assign(panel="rate")], ignore_index=True)
    for c in ("n_requests", "offline_n_runs", "offline_n_requests", "offline_batch_size", "batch_size"):
        out[c] = pd.to_numeric(out[c], errors="coerce").round().astype("Int64")
    return save(fig, out[["panel"] + [c for c in out if c != "panel"]], files, caption)


# Energy against latency of the rate sweep ---------------------------------------------------------------
