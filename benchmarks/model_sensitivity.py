"""Where does a replayed row's model error get its run-to-run spread? Within-job noise against the rest.

    .venv/bin/python benchmarks/model_sensitivity.py RUN [SECOND_RUN] [--column model_error_phase_pct]

For each replayed (cell, workload) of a finished run, every measured point's energy is raised by 3 % in
turn (its full window; its prefill window apart, per (input, batch) shape, since prefill windows are
shared across a shape's outputs) and the validation is computed again (``estimates.replay.validate``:
the same fit, form choice, serving and drift correction as the pipeline). The change of the row's
error is the point's elasticity. With each window's noise (the standard deviation of log energy
between a point's repeats, pooled as the median over the cell's points, since two repeats make a
point's own estimate noisy), the run's within-job noise gives the row's error a spread of

    grid job:    sqrt(sum over points of elasticity^2 x noise^2 / repeats)
    replay job:  the runs' standard error (``replay_se_pct``) and the control points' repeats there
                 (the same window noise over ``replay.control_repeats``, with the elasticity the
                 control points have in the grid job, sign turned),

printed per row with the points that carry most of it. With SECOND_RUN (for example the copy that
``benchmarks/reproducibility.py`` made) it prints each row's observed move between the runs beside the
move the within-job noise predicts (sqrt(2) x the spread): a move well beyond it comes from what
changes between jobs (the meter's level and shape from one job to the next), which more repeats
inside a job cannot average away. Nothing is written; the run is only read.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reproducibility import grid_cells  # noqa: E402

from llm_energy.estimates.replay import validate  # noqa: E402
from llm_energy.modelling.energy_model import context_length  # noqa: E402
from llm_energy.pipeline.roles import is_padded  # noqa: E402

POINT = ["input_len", "output_len", "batch_size", "role"]
DELTA = 0.03


def _inputs(run: Path, cell: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    replays = pd.concat([pd.read_parquet(f) for f in sorted((run / "results" / "replay" / cell).glob("*.parquet"))],
                        ignore_index=True)
    measurements = pd.read_parquet(run / "results" / "checked" / f"{cell}.parquet")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    config_json = run / "models" / cell.parts[1] / "config.json"
    kw = {"input_edges": cfg["bins"]["input"], "output_edges": cfg["bins"]["output"],
          "context_len": context_length(config_json) if config_json.exists() else None, "name": str(cell)}
    return replays, measurements, kw


def elasticities(replays: pd.DataFrame, m: pd.DataFrame, kw: dict, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per perturbed window set (``window``: full or prefill) with its repeats, noise and
    elasticity per workload; and the validation as computed (one row per workload)."""
    rows = validate(replays, m, **kw).set_index("workload")
    base = rows[column]
    ok = m[(m["status"] == "ok") & m["valid"].fillna(False).astype(bool)].copy()
    ok["padded_batch"] = is_padded(ok["role"].astype(str))
    pad_all = is_padded(m["role"].astype(str))

    def log_sd(e):
        return float(np.log(e[e > 0]).std(ddof=1)) if (e > 0).sum() > 1 else math.nan

    sets = []
    for key, g in ok.groupby(POINT):
        sets.append(("full", key, (m[POINT] == pd.Series(key, index=POINT)).all(axis=1), "energy_j",
                     log_sd(g["energy_j"]), len(g)))
    for key, g in ok.groupby(["input_len", "batch_size", "padded_batch"]):
        windows = g["prefill_energy_j"].drop_duplicates()
        sets.append(("prefill", key, (m["input_len"] == key[0]) & (m["batch_size"] == key[1]) & (pad_all == key[2]),
                     "prefill_energy_j", log_sd(windows), len(windows)))
    out = []
    for window, key, sel, col, sd, n in sets:
        moved = m.copy()
        moved.loc[sel, col] *= 1 + DELTA
        new = validate(replays, moved, **kw).set_index("workload")[column]
        el = (np.log1p(new / 100) - np.log1p(base / 100)) / math.log1p(DELTA)
        out.append({"window": window, "point": key, "noise": sd, "repeats": n, **el.to_dict()})
    return pd.DataFrame(out), rows


def control_windows(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """The rows of ``table`` that the replay job measured again as its control points (unpadded)."""
    first = runs.iloc[0]
    if "control_input_len" not in runs or first["control_input_len"] is None:
        return pd.Series(False, index=table.index)
    b = int(first["control_batch_size"])
    shapes = {(int(i), int(o)) for i, o in zip(first["control_input_len"], first["control_output_len"])}
    def is_control(r) -> bool:
        if r["window"] == "full":
            i, o, batch, role = r["point"]
            return (i, o) in shapes and batch == b and not is_padded(pd.Series([role])).iloc[0]
        i, batch, padded = r["point"]
        return any(i == s[0] for s in shapes) and batch == b and not padded
    return table.apply(is_control, axis=1)


def spread(table: pd.DataFrame, workload: str, runs: pd.DataFrame, control_repeats: float,
           replay_se_pct: float) -> dict:
    """The row's within-job spread (% of the error, one sigma) from the grid job and the replay job."""
    noise = table.groupby("window")["noise"].transform("median")  # pooled: two repeats per point
    var = table[workload] ** 2 * noise ** 2 / table["repeats"]
    controls = control_windows(table, runs)  # their replay-job value moves the drift as the grid's does, inverted
    control_var = float((table.loc[controls, workload] ** 2 * noise[controls] ** 2).sum()) / control_repeats
    replay_pct = math.sqrt(control_var) * 100
    return {"grid_sd_pct": 100 * math.sqrt(float(var.sum())),
            "replay_sd_pct": math.hypot(replay_pct, replay_se_pct if np.isfinite(replay_se_pct) else 0.0),
            "top": table.assign(share=var / var.sum()).sort_values("share", ascending=False).head(3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("second", type=Path, nargs="?")
    ap.add_argument("--column", default="model_error_phase_pct",
                    help="the validation's error column (model_error_pct: raw)")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    control_repeats = float(cfg["replay"].get("control_repeats") or cfg["measurement"]["repeats"])
    for cell in grid_cells(args.run):
        replays, m, kw = _inputs(args.run, cell)
        table, rows = elasticities(replays, m, kw, args.column)
        base = rows[args.column]
        second = None
        if args.second:
            second = pd.read_parquet(args.second / "results" / "validation" / f"{cell}.parquet").set_index("workload")
        print(f"\n{cell} ({args.column}); window noise, median sd of log energy between repeats: "
              + ", ".join(f"{w} {v:.3f}" for w, v in table.groupby("window")["noise"].median().items()))
        for workload in base.index:
            s = spread(table, workload, replays[replays["workload"] == workload], control_repeats,
                       float(rows.loc[workload, "replay_se_pct"]))
            within = math.hypot(s["grid_sd_pct"], s["replay_sd_pct"])
            line = (f"  {workload:18s} error {base[workload]:+6.1f} %; within-job spread: grid {s['grid_sd_pct']:.1f}, "
                    f"replay {s['replay_sd_pct']:.1f}, both {within:.1f} points")
            if second is not None and workload in second.index:
                move = float(second.loc[workload, args.column]) - float(base[workload])
                line += f"; second run {move:+.1f} points (within-job noise predicts +-{math.sqrt(2) * within:.1f})"
            print(line)
            for _, r in s["top"].iterrows():
                print(f"      {r['window']:7s} {r['point']!s:34s} elasticity {r[workload]:+.2f}, "
                      f"{100 * r['share']:.0f} % of the grid job's part")
    return 0


if __name__ == "__main__":
    sys.exit(main())
