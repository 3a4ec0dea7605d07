"""A second run that agrees? Re-measure a finished run's grid cells and replays in a copy, and compare.

    .venv/bin/python benchmarks/reproducibility.py RUN [--copy DIR] [--cores N] [--all] [--compare-only]

RUN is a finished pipeline run (its ``results/validation/`` holds one file per grid cell that was
replayed). The run is copied (``--copy``, default ``RUN-rerun``; data links stay links, nothing in RUN
is touched), and in the copy Snakemake re-runs exactly the grid cells' measurement jobs
(``--forcerun`` on their files), which re-runs their replay and validation jobs after them. It
then prints, for both runs:

1. every (cell, workload) error of the energy model and of the binned estimate against the metered
   replay, the model's change between the runs, and the meter's drift between the grid and replay jobs;
2. the ratio of each grid point's energy (mean of its valid repeats) in the second run to the first's,
   and how it depends on the point's decode share of energy (a change of the meter's shape, not only
   of its level); and how the meter's level moved inside each grid job while it ran (its last quarter
   of windows over its first, point-normalised, and the reference kernel's), which says whether a
   run's meter was steady at all;
3. each grid cell's leave-one-point-out median error, per point role;
4. with ``--all``, the findings' verdicts of both runs side by side: ``--all`` re-runs every metering
   job of the run (``--forcerun measure_cell replay_cell serve_cell``: every cell, every replay, the
   rate sweep) and rebuilds everything after them, a second default run but for the profiles and
   models, because the verdicts compare cells other than the grid's. A verdict that moves between
   ``reproduced`` and ``not reproduced`` is a flip (the verdict issue's goal: none); moves to or from
   ``inconclusive`` or ``not testable here`` are counted apart.

And, last, the model issue's goals on these two runs: |model error| <= 15 % in both, no row's model
error moving by more than 10 points, leave-one-out median <= 10 % per grid cell. Nothing is tuned
here: it reads what the pipeline wrote. With ``--compare-only`` it compares RUN and an existing copy.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from llm_energy.modelling.energy_model import fit_cell  # noqa: E402

KEYS = ["hardware", "model", "variant", "decoding"]
POINT = ["input_len", "output_len", "batch_size", "role"]
GOAL_MODEL_PCT, GOAL_MOVE_PTS, GOAL_LOO_PCT = 15.0, 10.0, 10.0


def grid_cells(run: Path) -> list[Path]:
    """The cells replayed in a run, as paths relative to ``results/validation`` (without suffix)."""
    root = run / "results" / "validation"
    return sorted(p.relative_to(root).with_suffix("") for p in root.rglob("*.parquet"))


def copy_run(run: Path, dest: Path) -> None:
    """A copy with its Snakemake metadata (so only the forced jobs run), without locks or incomplete markers."""
    if dest.exists():
        raise SystemExit(f"{dest} exists: remove it or pass another --copy")

    def ignore(folder, names):
        return [n for n in names if Path(folder).name == ".snakemake" and n in ("locks", "incomplete", "log")]

    shutil.copytree(run, dest, symlinks=True, ignore=ignore)


METERING_RULES = ("measure_cell", "replay_cell", "serve_cell")


def rerun(copy: Path, cells: list[Path], cores: str, everything: bool = False) -> None:
    measured = [f"results/measurements/{c}.parquet" for c in cells]
    validation = [f"results/validation/{c}.parquet" for c in cells]
    if everything:  # the default target (the whole paper), every metering job forced
        cmd = [sys.executable, "-m", "snakemake", "--cores", cores, "--forcerun", *METERING_RULES]
    else:
        cmd = [sys.executable, "-m", "snakemake", "--cores", cores, *validation, "--forcerun", *measured]
    print("in", copy, ":", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, cwd=copy, check=True)


def validation_rows(run: Path, cells: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(run / "results" / "validation" / f"{c}.parquet") for c in cells],
                     ignore_index=True)


def point_energy(run: Path, cell: Path) -> pd.Series:
    m = pd.read_parquet(run / "results" / "checked" / f"{cell}.parquet")
    m = m[(m["status"] == "ok") & m["valid"].fillna(False).astype(bool)]
    return m.groupby(POINT)["energy_j"].mean()


def change_by_phase(run: Path, cell: Path, ratios: pd.DataFrame) -> tuple[float, float, float]:
    """How the meter's change between the runs depends on what a point spends its energy on: log(ratio)
    fitted linearly to the point's decode share of energy in run 1 (mean decode / mean full window).
    Returns the fitted ratio of prefill-only work (share 0), of decode-only work (share 1), and the
    correlation; NaNs with fewer than 3 points that have a decode share. A uniform change of level
    gives the same ratio at both ends; one the runs' errors cancel, a change of shape they do not."""
    m = pd.read_parquet(run / "results" / "checked" / f"{cell}.parquet")
    m = m[(m["status"] == "ok") & m["valid"].fillna(False).astype(bool)]
    if "decode_energy_j" not in m:
        return np.nan, np.nan, np.nan
    g = m.groupby(POINT)[["decode_energy_j", "energy_j"]].mean()
    share = (g["decode_energy_j"] / g["energy_j"]).rename("share").reset_index()
    both = ratios.merge(share, on=POINT)
    both = both[np.isfinite(both["share"]) & both["share"].between(0, 1) & (both["ratio"] > 0)]
    if len(both) < 3 or both["share"].nunique() < 2:
        return np.nan, np.nan, np.nan
    y = np.log(both["ratio"].to_numpy())
    slope, intercept = np.polyfit(both["share"].to_numpy(), y, 1)
    return float(np.exp(intercept)), float(np.exp(intercept + slope)), float(np.corrcoef(both["share"], y)[0, 1])


def reference_ratio(run: Path, copy: Path, cell: Path) -> float:
    """The reference kernel's median energy in the second run's grid job over the first's: how far the
    meter's level moved between the two jobs, by a fixed piece of work (NaN without readings)."""
    def level(r: Path) -> float:
        m = pd.read_parquet(r / "results" / "checked" / f"{cell}.parquet")
        if "reference_energy_j" not in m:
            return np.nan
        return float(m.drop_duplicates([*POINT, "reference_energy_j"])["reference_energy_j"].median())

    return level(copy) / level(run)


def level_trend(m: pd.DataFrame) -> tuple[float, float]:
    """How the meter's level moved inside one grid job while it ran: each ok window's energy over its
    point's geometric mean (so that every point counts alike), the median of the last quarter of the
    windows in the job's order (``sweep_index``) over the first quarter's; and the same of the reference
    kernel's readings (NaN without them). Serpentine rounds make a linear trend fall alike on every
    point's mean, but a trend this size says the meter was not steady while the job ran."""
    if "sweep_index" not in m:
        return np.nan, np.nan
    m = m[m["status"] == "ok"].sort_values("sweep_index", kind="stable")
    rel = m["energy_j"] / np.exp(np.log(m["energy_j"]).groupby([m[c] for c in POINT]).transform("mean"))
    ref = m["reference_energy_j"] if "reference_energy_j" in m else pd.Series(np.nan, index=m.index)

    def ratio(x: pd.Series) -> float:
        x = x[x > 0]
        quarter = len(x) // 4
        return float(x.iloc[-quarter:].median() / x.iloc[:quarter].median()) if quarter >= 2 else np.nan

    return ratio(rel), ratio(ref)


def loo_by_role(run: Path, cell: Path) -> dict[str, float]:
    return fit_cell(pd.read_parquet(run / "results" / "checked" / f"{cell}.parquet"), name=str(cell)).loo_by_role()


CORRECTED = "model_error_corrected_pct"  # the model's error against the replay at the grid job's meter level
REFERENCED = "model_error_ref_pct"  # the same, the level told by the reference kernel read through both jobs
PHASED = "model_error_phase_pct"  # the model's prefill and decode parts each at the replay job's level
STEADY = "model_error_steady_pct"  # the same, of the model fitted to the grid job at its steady level


def errors_table(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Both runs' errors per (cell, workload): raw (the metered replay) and drift-corrected (the replay
    divided by its control points' drift; NaN in validation files written before the correction)."""
    cols = [*KEYS, "workload"]
    keep = ["error_pct", "model_error_pct", CORRECTED, PHASED, STEADY, REFERENCED, "meter_drift_pct",
            "meter_drift_prefill_pct", "meter_drift_decode_pct", "reference_drift_pct", "model_flag"]
    first, second = (d.reindex(columns=[*cols, *keep]) for d in (first, second))
    t = first.merge(second, on=cols, suffixes=("_1", "_2"))
    t["model_move_pts"] = t["model_error_pct_2"] - t["model_error_pct_1"]
    t["corrected_move_pts"] = t[f"{CORRECTED}_2"] - t[f"{CORRECTED}_1"]
    t["ref_move_pts"] = t[f"{REFERENCED}_2"] - t[f"{REFERENCED}_1"]
    t["phase_move_pts"] = t[f"{PHASED}_2"] - t[f"{PHASED}_1"]
    t["steady_move_pts"] = t[f"{STEADY}_2"] - t[f"{STEADY}_1"]
    return t


def model_goals(t: pd.DataFrame, error: str, move: str) -> tuple[float, float]:
    """The largest |model error| over both runs and the largest move between them, for one error column."""
    return float(t[[f"{error}_1", f"{error}_2"]].abs().max().max()), float(t[move].abs().max())


SIDES = ("reproduced", "not reproduced")


def verdict_table(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Both runs' findings side by side (paper/findings.csv), with how each verdict moved: ``same``,
    ``flip`` (reproduced <-> not reproduced) or ``moved`` (to or from inconclusive / not testable)."""
    keys = ["finding", "hardware"]
    cols = ["verdict", "our_value", "our_noise"]
    t = first[keys + cols].merge(second[keys + cols], on=keys, how="outer", suffixes=("_1", "_2"))
    t["move"] = ["same" if a == b else "flip" if {a, b} == set(SIDES) else "moved"
                 for a, b in zip(t["verdict_1"], t["verdict_2"])]
    return t


def print_verdicts(run: Path, copy: Path) -> None:
    files = [d / "paper" / "findings.csv" for d in (run, copy)]
    if not all(f.exists() for f in files):
        print("\n4. Verdicts: paper/findings.csv missing in a run (run with --all)")
        return
    t = verdict_table(*(pd.read_csv(f) for f in files))
    print("\n4. Findings' verdicts, run 1 and run 2 (our_noise: the interval of the noise gate)")
    print(t.round(3).to_string(index=False))
    n = t["move"].value_counts()
    print(f"   {n.get('same', 0)} same, {n.get('flip', 0)} flipped between reproduced and not reproduced, "
          f"{n.get('moved', 0)} moved to or from inconclusive / not testable here")
    print(f"   no finding flips between reproduced and not reproduced: {_ok(n.get('flip', 0) == 0)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--copy", type=Path, help="where the second run goes (default: RUN-rerun)")
    ap.add_argument("--cores", default="all")
    ap.add_argument("--compare-only", action="store_true", help="compare RUN with an existing copy")
    ap.add_argument("--all", action="store_true", help="re-run every metering job and the whole paper, and "
                    "compare the findings' verdicts too")
    args = ap.parse_args(argv)
    run = args.run.resolve()
    copy = (args.copy or run.with_name(run.name + "-rerun")).resolve()
    cells = grid_cells(run)
    if not cells:
        raise SystemExit(f"{run}: no results/validation/ files: run the pipeline there first (with replay on)")
    if not args.compare_only:
        copy_run(run, copy)
        rerun(copy, cells, args.cores, everything=args.all)
    first, second = validation_rows(run, cells), validation_rows(copy, cells)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    t = errors_table(first, second)
    print("\n1. Errors against the metered replay (%), run 1 and run 2; model_move_pts = run 2 - run 1; "
          "*_corrected: against the replay divided by its control points' drift (meter_drift_pct); *_phase: the "
          "model's prefill and decode parts each moved by its own drift (meter_drift_prefill_pct, "
          "meter_drift_decode_pct); *_steady: the same, of the model fitted to the grid job brought to its median "
          "reference level window by window (steady_grid); *_ref: divided by the reference kernel's "
          "(reference_drift_pct)")
    print(t.drop(columns=["model_flag_1", "model_flag_2"]).round(1).to_string(index=False))
    for _, r in t[(t["model_flag_1"] != "") | (t["model_flag_2"] != "")].iterrows():
        print(f"   flagged {r['variant']} {r['workload']}: {r['model_flag_1'] or '-'} | {r['model_flag_2'] or '-'}")
    print("\n2. Each grid point's energy, run 2 / run 1 (mean of valid repeats)")
    ratios = []
    for cell in cells:
        a, b = point_energy(run, cell), point_energy(copy, cell)
        both = a.index.intersection(b.index)
        r = (b[both] / a[both]).rename("ratio").reset_index()
        r.insert(0, "cell", str(cell))
        ratios.append(r)
        q = r["ratio"]
        ref = reference_ratio(run, copy, cell)
        print(f"   {cell}: {len(q)} points, median {q.median():.3f}, min {q.min():.3f}, max {q.max():.3f}, "
              f"geometric spread {np.exp(np.log(q).std()):.3f}; the reference kernel, run 2 / run 1: "
              f"{ref:.3f}" + (f" (the points / the reference: median {q.median() / ref:.3f})" if ref == ref else ""))
        pre, dec, corr = change_by_phase(run, cell, r)
        if pre == pre:
            print(f"     by phase (log-linear in the point's decode share of energy in run 1): prefill-only work "
                  f"x{pre:.3f}, decode-only work x{dec:.3f}, correlation {corr:+.2f} (a uniform change of the "
                  "meter's level gives one factor; a change of shape between a run's grid and replay jobs "
                  "bends the model's errors, and no single drift factor removes it)")
        trends = [level_trend(pd.read_parquet(r / "results" / "checked" / f"{cell}.parquet")) for r in (run, copy)]
        print("     inside each grid job, its last quarter of windows over its first (point-normalised): "
              + "; ".join(f"run {i} batches x{b:.3f}, reference x{k:.3f}" for i, (b, k) in enumerate(trends, 1)))
    print(pd.concat(ratios, ignore_index=True).round(3).to_string(index=False))
    print("\n3. Leave-one-point-out median |error| (%) per point role")
    loo = {}
    for cell in cells:
        loo[cell] = (loo_by_role(run, cell), loo_by_role(copy, cell))
        print(f"   {cell}: run 1 {_fmt(loo[cell][0])}; run 2 {_fmt(loo[cell][1])}")
    print("\nGoals (model issue), measured on these two runs (raw: the metered replay; corrected: the replay at "
          "the grid job's meter level, raw beside it):")
    loo_worst = max(max(d.get("grid", np.nan) for d in pair) for pair in loo.values())
    for label, error, move_col in (("raw", "model_error_pct", "model_move_pts"),
                                   ("corrected", CORRECTED, "corrected_move_pts"),
                                   ("phase-corrected", PHASED, "phase_move_pts"),
                                   ("steady grid, phase-corrected", STEADY, "steady_move_pts"),
                                   ("reference", REFERENCED, "ref_move_pts")):
        worst, move = model_goals(t, error, move_col)
        if np.isnan(worst):
            print(f"   {label}: no such corrected errors in these validation files")
            continue
        print(f"   {label}: every |model error| <= {GOAL_MODEL_PCT:g} % in both runs: {_ok(worst <= GOAL_MODEL_PCT)} "
              f"(largest {worst:.1f} %); no row's model error moves by more than {GOAL_MOVE_PTS:g} points: "
              f"{_ok(move <= GOAL_MOVE_PTS)} (largest {move:.1f})")
    for label, move_col in (("control points'", "corrected_move_pts"), ("control points' per-phase", "phase_move_pts"),
                            ("steady grid's and per-phase", "steady_move_pts"),
                            ("reference kernel's", "ref_move_pts")):
        if t[move_col].isna().all():
            continue
        raw, cor = t["model_move_pts"].abs(), t[move_col].abs()
        print(f"   the {label} correction brings the runs "
              f"{'closer together' if cor.median() < raw.median() else 'no closer'}: "
              f"median |move| {raw.median():.1f} points raw, {cor.median():.1f} corrected "
              f"(largest {raw.max():.1f} / {cor.max():.1f})")
    print(f"   leave-one-out grid median <= {GOAL_LOO_PCT:g} % for every grid cell: "
          f"{_ok(loo_worst <= GOAL_LOO_PCT)} (largest {loo_worst:.1f} %)")
    print_verdicts(run, copy)
    return 0


def _fmt(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in d.items())


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
