"""Where a pipeline run's time went: each stage's and each metered cell's share, from its benchmark files.

    .venv/bin/python benchmarks/pipeline_profile.py [run folder]    (default: this folder)

Every rule writes Snakemake's benchmark TSV (`s` wall seconds, `max_rss` MiB, `cpu_time` s, ...) to
``results/benchmarks/{rule}/{wildcards}.tsv`` (``results/benchmarks/{rule}.tsv`` for a rule without
wildcards). This prints two tables: per stage (rule) and per cell (hardware/model/variant/decoding)
of ``measure_cell`` and ``replay_cell``, each sorted by time, with a total row and the largest RSS.
Shares are of the summed job time; jobs run side by side on several cores, so that sum can exceed
the run's wall clock (a metered cell takes every core and runs alone).

A third table splits each measurement job's time, from its measurement file's own clocks
(``cell_wall_s``, ``model_load_s``, ``cell_protocol_s``, ``cell_measured_s``): ``startup_s`` (the job
outside the cell's clock: interpreter, imports, the prompt book, Snakemake), ``load_s`` (the model
or engine), ``protocol_s`` (warm-up, idle window, probing, pauses), ``metered_s`` (the metered
windows), ``other_s`` (the rest of the cell: bookkeeping between windows) and ``metered_pct``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

BENCH_DIR = Path("results/benchmarks")
CELL_RULES = ("measure_cell", "replay_cell")


def load(run: Path) -> pd.DataFrame:
    """One row per benchmark file: `rule`, `job` (its wildcards as a path), `s`, `max_rss_mib`, `cpu_time_s`.

    A job benchmarked with repeats has several rows in its file: their times add up, the RSS is the
    largest. "NA" (a job too short to be sampled) reads as missing."""
    root = run / BENCH_DIR
    rows = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        rel = path.relative_to(root).with_suffix("")
        rule, job = (rel.parts[0], "/".join(rel.parts[1:])) if len(rel.parts) > 1 else (rel.name, "")
        t = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        if t.empty or "s" not in t:
            continue
        rows.append({"rule": rule, "job": job, "s": float(t["s"].sum()),
                     "max_rss_mib": pd.to_numeric(t.get("max_rss"), errors="coerce").max(),
                     "cpu_time_s": pd.to_numeric(t.get("cpu_time"), errors="coerce").sum(min_count=1)})
    return pd.DataFrame(rows, columns=["rule", "job", "s", "max_rss_mib", "cpu_time_s"])


def _shares(grouped: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sorted by time, with `share_pct` of the total and a final `total` row."""
    out = grouped.sort_values(["s", key], ascending=[False, True]).reset_index(drop=True)
    total = out["s"].sum()
    out["share_pct"] = 100 * out["s"] / total if total > 0 else 0.0
    total_row = {key: "total", "jobs": out["jobs"].sum(), "s": total, "share_pct": 100.0 if total > 0 else 0.0,
                 "max_rss_mib": out["max_rss_mib"].max(), "cpu_time_s": out["cpu_time_s"].sum(min_count=1)}
    return pd.concat([out, pd.DataFrame([total_row])], ignore_index=True)


def by_stage(df: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, summed wall seconds, share of all job time, largest RSS, CPU seconds."""
    g = df.groupby("rule").agg(jobs=("s", "size"), s=("s", "sum"), max_rss_mib=("max_rss_mib", "max"),
                               cpu_time_s=("cpu_time_s", lambda c: c.sum(min_count=1))).reset_index()
    return _shares(g, "rule")[["rule", "jobs", "s", "share_pct", "max_rss_mib", "cpu_time_s"]]


def by_cell(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell of measure_cell and replay_cell: each rule's seconds, their sum, its share of the cells' time
    (`share_pct`) and of all job time (`share_of_run_pct`), largest RSS."""
    cells = df[df["rule"].isin(CELL_RULES)]
    # a replay job is one (cell, workload): results/benchmarks/replay_cell/<cell>/<workload>.tsv
    replay = cells["rule"] == "replay_cell"
    cells = cells.assign(job=cells["job"].where(~replay, cells["job"].str.rsplit("/", n=1).str[0]))
    cols = ["cell", "jobs", *[f"{r}_s" for r in CELL_RULES], "s", "share_pct", "share_of_run_pct", "max_rss_mib"]
    if cells.empty:
        return pd.DataFrame(columns=cols)
    wide = cells.pivot_table(index="job", columns="rule", values="s", aggfunc="sum")
    wide = wide.reindex(columns=list(CELL_RULES)).add_suffix("_s")
    g = cells.groupby("job").agg(jobs=("s", "size"), s=("s", "sum"), max_rss_mib=("max_rss_mib", "max"),
                                 cpu_time_s=("cpu_time_s", lambda c: c.sum(min_count=1)))
    g = g.join(wide).reset_index().rename(columns={"job": "cell"})
    out = _shares(g, "cell")
    run_total = df["s"].sum()
    out["share_of_run_pct"] = 100 * out["s"] / run_total if run_total > 0 else 0.0
    for r in CELL_RULES:
        out.loc[out["cell"] == "total", f"{r}_s"] = out[f"{r}_s"].iloc[:-1].sum(min_count=1)
    return out[cols]


SPLIT = ["startup_s", "load_s", "protocol_s", "metered_s", "other_s"]


def by_measure_job(run: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Per measurement job whose measurement file is there: its time split into ``SPLIT``, and the
    metered share of the job (``metered_pct``), sorted by job time, with a total row."""
    cols = ["cell", "s", *SPLIT, "metered_pct"]
    rows = []
    for job in df[df["rule"] == "measure_cell"].itertuples():
        path = run / "results/measurements" / f"{job.job}.parquet"
        try:
            m = pd.read_parquet(path, columns=["cell_wall_s", "model_load_s", "cell_protocol_s", "cell_measured_s"])
        except (OSError, ValueError, KeyError, ImportError):  # gone, or written before these columns
            continue
        if m.empty:
            continue
        wall, load_s, protocol, metered = (float(m[c].iloc[0]) for c in m.columns)
        rows.append({"cell": job.job, "s": job.s, "startup_s": job.s - wall, "load_s": load_s,
                     "protocol_s": protocol, "metered_s": metered, "other_s": wall - load_s - protocol - metered})
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows).sort_values(["s", "cell"], ascending=[False, True])
    total = {"cell": "total", **out[["s", *SPLIT]].sum().to_dict()}
    out = pd.concat([out, pd.DataFrame([total])], ignore_index=True)
    out["metered_pct"] = 100 * out["metered_s"] / out["s"]
    return out[cols]


def render(table: pd.DataFrame) -> str:
    """Fixed-width text: seconds and MiB to one decimal, shares to one decimal with %, missing as '-'."""
    t = table.copy()
    for c in t.columns:
        if c.endswith("_pct"):
            t[c] = t[c].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}%")
        elif c.endswith("_s") or c == "s" or c.endswith("_mib"):
            t[c] = t[c].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}")
    return t.to_string(index=False)


def main(argv: list[str]) -> int:
    run = Path(argv[0]) if argv else Path(".")
    df = load(run)
    if df.empty:
        print(f"no benchmark files under {run / BENCH_DIR}: this run predates the rules' benchmark: lines "
              "(or ran no job); run the pipeline again to record them", file=sys.stderr)
        return 1
    print(f"{run}: {len(df)} jobs, {df['s'].sum():.1f} s of job time (summed; jobs may overlap)\n")
    print("Per stage\n" + render(by_stage(df)) + "\n")
    cells = by_cell(df)
    print("Per cell (measure_cell, replay_cell)\n" + (render(cells) if len(cells) else "(no cell was run)"))
    split = by_measure_job(run, df)
    if len(split):
        print("\nWhere each measurement job's time went (from its measurement file's clocks)\n" + render(split))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
