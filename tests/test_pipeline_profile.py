"""benchmarks/pipeline_profile.py on hand-made benchmark files: each stage's and each cell's share."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pipeline_profile", REPO / "benchmarks" / "pipeline_profile.py")
pipeline_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pipeline_profile)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
CELL_A = "cpu-x/m1/transformers-eager/greedy"
CELL_B = "cpu-x/m1/vllm-eager/greedy"


def bench(run: Path, rel: str, *rows: tuple[float, object, object]) -> None:
    """A benchmark TSV as Snakemake writes it: one row per repeat of (s, max_rss MiB, cpu_time s)."""
    path = run / "results/benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n" for s, rss, cpu in rows]
    path.write_text(HEADER + "".join(lines))


@pytest.fixture
def run(tmp_path):
    bench(tmp_path, f"measure_cell/{CELL_A}.tsv", (30.0, 800.0, 55.0))
    bench(tmp_path, f"measure_cell/{CELL_B}.tsv", (50.0, 1200.0, 90.0))
    # one replay job per (cell, workload): 6 + 4 s for CELL_B
    bench(tmp_path, f"replay_cell/{CELL_B}/w1.tsv", (6.0, 1100.0, 10.0))
    bench(tmp_path, f"replay_cell/{CELL_B}/w2.tsv", (4.0, 900.0, 8.0))
    bench(tmp_path, "build_model/m1.tsv", (4.0, 300.0, 3.0))
    # two repeats: the times add up, the RSS is the larger
    bench(tmp_path, "figure/fig1_workload_energy.tsv", (2.0, 150.0, 1.5), (1.0, 170.0, 0.5))
    # a job too short to be sampled: no RSS, no CPU time
    bench(tmp_path, "estimate.tsv", (3.0, "NA", "NA"))
    return tmp_path


def test_load_reads_rule_and_wildcards_from_the_path(run):
    df = pipeline_profile.load(run).set_index(["rule", "job"])
    assert len(df) == 7
    assert df.loc[("replay_cell", f"{CELL_B}/w2"), "s"] == 4.0
    assert df.loc[("measure_cell", CELL_B), "s"] == 50.0
    assert df.loc[("figure", "fig1_workload_energy"), "s"] == 3.0
    assert df.loc[("figure", "fig1_workload_energy"), "max_rss_mib"] == 170.0
    assert df.loc[("figure", "fig1_workload_energy"), "cpu_time_s"] == 2.0
    assert df.loc[("estimate", ""), "s"] == 3.0 and df.loc[("estimate", ""), ["max_rss_mib", "cpu_time_s"]].isna().all()


def test_stage_shares_are_sorted_and_sum_to_the_total(run):
    t = pipeline_profile.by_stage(pipeline_profile.load(run)).set_index("rule")
    # 100 s of job time: measure 80, replay 10, build 4, figure 3, estimate 3
    assert list(t.index) == ["measure_cell", "replay_cell", "build_model", "estimate", "figure", "total"]
    assert t.loc["measure_cell", "share_pct"] == pytest.approx(80.0)
    assert t.loc["replay_cell", "share_pct"] == pytest.approx(10.0)
    assert t.loc["figure", "share_pct"] == pytest.approx(3.0)
    assert t.loc["measure_cell", "jobs"] == 2 and t.loc["replay_cell", "jobs"] == 2 and t.loc["total", "jobs"] == 7
    assert t.loc["total", "s"] == pytest.approx(100.0) and t.loc["total", "share_pct"] == 100.0
    assert t.drop("total")["share_pct"].sum() == pytest.approx(100.0)
    assert t.loc["measure_cell", "max_rss_mib"] == 1200.0 and t.loc["total", "max_rss_mib"] == 1200.0
    assert t.loc["measure_cell", "cpu_time_s"] == pytest.approx(145.0)
    assert pd.isna(t.loc["estimate", "cpu_time_s"])


def test_cell_shares_add_measure_and_replay(run):
    t = pipeline_profile.by_cell(pipeline_profile.load(run)).set_index("cell")
    assert list(t.index) == [CELL_B, CELL_A, "total"]
    assert t.loc[CELL_B, "measure_cell_s"] == 50.0 and t.loc[CELL_B, "replay_cell_s"] == 10.0
    assert t.loc[CELL_B, "s"] == 60.0 and t.loc[CELL_B, "jobs"] == 3  # its replays summed into the cell
    assert pd.isna(t.loc[CELL_A, "replay_cell_s"])
    # of the cells' 90 s, and of the run's 100 s
    assert t.loc[CELL_B, "share_pct"] == pytest.approx(200 / 3)
    assert t.loc[CELL_A, "share_pct"] == pytest.approx(100 / 3)
    assert t.loc[CELL_B, "share_of_run_pct"] == pytest.approx(60.0)
    assert t.loc["total", "share_of_run_pct"] == pytest.approx(90.0)
    assert t.loc["total", "measure_cell_s"] == 80.0 and t.loc["total", "replay_cell_s"] == 10.0
    assert t.loc["total", "max_rss_mib"] == 1200.0


def test_main_prints_both_tables(run, capsys):
    assert pipeline_profile.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "7 jobs, 100.0 s of job time" in out
    assert "80.0%" in out and "66.7%" in out and CELL_B in out


def test_run_without_benchmark_files_is_one_line(tmp_path, capsys):
    (tmp_path / "results/measurements").mkdir(parents=True)
    assert pipeline_profile.main([str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "no benchmark files" in lines[0] and "predates" in lines[0]


def test_run_without_cells_says_so(tmp_path, capsys):
    bench(tmp_path, "profile_workload/burstgpt.tsv", (1.5, 90.0, 1.2))
    assert pipeline_profile.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "profile_workload" in out and "100.0%" in out and "(no cell was run)" in out



def test_each_measurement_jobs_time_is_split_by_its_own_clocks(run, capsys):
    path = run / "results/measurements" / f"{CELL_A}.parquet"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"cell_wall_s": [25.0, 25.0], "model_load_s": [1.0, 1.0], "cell_protocol_s": [4.0, 4.0],
                  "cell_measured_s": [18.0, 18.0], "energy_j": [1.0, 2.0]}).to_parquet(path)
    # CELL_B's measurement file is not there (e.g. deleted since): no row, and no error.
    split = pipeline_profile.by_measure_job(run, pipeline_profile.load(run))
    assert split["cell"].tolist() == [CELL_A, "total"]
    a = split.iloc[0]
    assert (a["s"], a["startup_s"], a["load_s"], a["protocol_s"], a["metered_s"]) == (30.0, 5.0, 1.0, 4.0, 18.0)
    assert a["other_s"] == pytest.approx(2.0) and a["metered_pct"] == pytest.approx(60.0)
    assert split.iloc[1]["s"] == 30.0 and split.iloc[1]["metered_pct"] == pytest.approx(60.0)
    assert pipeline_profile.main([str(run)]) == 0
    assert "Where each measurement job's time went" in capsys.readouterr().out
