import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_energy import UserError
from llm_energy.pipeline import config as cfgmod

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def default():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_fill(default):
    del default["measurement"]["repeats"]
    cfg = cfgmod.validate(default)
    assert cfg["measurement"]["repeats"] == 3  # the paper's protocol is the schema's default
    points = {p[:3]: p[3] for p in cfgmod.cell_points(cfg)}
    bs = cfg["measurement"]["batch_size"]
    # Every bin of the grid is measured at the estimate's batch size; sweep points are marked.
    for i in cfg["bins"]["input"]:
        for o in cfg["bins"]["output"]:
            assert "grid" in points[(i, o, bs)].split(",")
    m = cfg["measurement"]
    assert points[(m["sweep_fixed_input"], m["sweep_output_lengths"][0], 1)] == "sweep"
    assert len(points) == len(cfgmod.cell_points(cfg))


def test_every_schema_key_has_a_description():
    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node:
                for key, sub in node["properties"].items():
                    assert "description" in sub, f"{where}.{key} has no description"
                    walk(sub, f"{where}.{key}")
            for k in ("additionalProperties", "items"):
                if isinstance(node.get(k), dict):
                    walk(node[k], where + "[]")
    walk(cfgmod.load_schema(), "config")


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(hardwre="auto"), "unknown key 'hardwre' in the top level"),
    (lambda c: c["measurement"].update(repeats=0), "measurement.repeats: 0 is less than the minimum of 1"),
    (lambda c: c["measurement"].update(batch_size="8"), "measurement.batch_size: '8' is not of type 'integer'"),
    (lambda c: c["cells"][0].update(variants=["vllm-turbo"]), "'vllm-turbo' is not allowed"),
    (lambda c: c["cells"][0].update(model="llama-9000"), "cells[0].model: 'llama-9000' is not in models"),
    (lambda c: c["bins"].update(input=[64, 32]), "bins.input: edges must be strictly increasing"),
    (lambda c: c["models"]["tiny-llama"]["architecture"].update(num_attention_heads=16), "head_dim 16"),
    (lambda c: c["models"]["tiny-llama"]["architecture"].update(max_position_embeddings=1000),
     "accepts at most 1000"),
])
def test_bad_config_gives_one_line_naming_the_key(default, change, message):
    bad = copy.deepcopy(default)
    change(bad)
    with pytest.raises(UserError) as err:
        cfgmod.validate(bad)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_snakemake_stops_on_a_bad_key_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("measurment:\n  repeats: 3\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown key 'measurment' in the top level" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_explicit_hardware_that_is_not_this_machine_needs_its_files(default):
    cfg = cfgmod.validate({**default, "hardware": "h100-80gb-hbm3"})
    assert cfgmod.check_hardware_choice(cfg, "cpu-x", lambda slug: []) == "h100-80gb-hbm3"  # copied in
    with pytest.raises(UserError, match=r"hardware: 'h100-80gb-hbm3' is not this machine \('cpu-x'\)"):
        cfgmod.check_hardware_choice(cfg, "cpu-x", lambda slug: [f"results/measurements/{slug}/a.parquet"])
    assert cfgmod.check_hardware_choice({**cfg, "hardware": "auto"}, "cpu-x", lambda s: ["x"]) == "cpu-x"


def test_local_model_length_limit_read_from_its_folder(default, tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 512}')
    bad = copy.deepcopy(default)
    bad["models"]["mine"] = {"source": "local", "path": str(tmp_path)}
    bad["cells"] = [{"model": "mine", "variants": ["transformers-eager"]}]
    with pytest.raises(UserError, match="model 'mine' accepts at most 512"):
        cfgmod.validate(bad)


def _cpu_full(default: dict) -> dict:
    """config/cpu-full.yaml merged into config.yaml as Snakemake merges --configfile, validated."""
    from snakemake.utils import update_config

    overlay = yaml.safe_load((REPO / "config" / "cpu-full.yaml").read_text())
    merged = copy.deepcopy(default)
    update_config(merged, overlay)
    return cfgmod.validate(merged)


def _measured(cfg: dict) -> dict:
    """(model, variant, decoding) -> the set of points that cell measures."""
    hw = "cpu-test"
    return {c.key: set(cfgmod.points_of(cfg, c)) for c in cfgmod.cell_table(cfg, hw)}


def test_cpu_full_overlay_measures_everything_the_default_does_and_more(default):
    """config/cpu-full.yaml restores the full CPU study: every cell of the default with at least its
    points, every workload replayed at 64 requests, and the same protocol otherwise."""
    full, base = _cpu_full(default), cfgmod.validate(copy.deepcopy(default))
    assert full["replay"]["n_requests"] == 64 and full["replay"]["workloads"] == list(full["workloads"])
    assert set(base["replay"]["workloads"]) < set(full["replay"]["workloads"])
    small, large = _measured(base), _measured(full)
    assert set(small) <= set(large)
    for key, points in small.items():
        # every (input, output) shape of the default is measured by the full study too, at as many
        # points and at batch sizes reaching at least as far (the default's grid batch is smaller)
        assert {p[:2] for p in points} <= {p[:2] for p in large[key]}, key
        assert len(large[key]) >= len(points) and max(p[2] for p in large[key]) >= max(p[2] for p in points), key
    assert sum(map(len, large.values())) > sum(map(len, small.values()))
    assert len(full["bins"]["input"]) * len(full["bins"]["output"]) >= 16
    for section in ("models", "workloads", "carbon", "decoding", "validation"):
        assert full[section] == base[section], section


def test_the_default_replays_the_three_kinds_of_workload(default, shared):
    """The default replays fewer workloads, but one of each kind that stresses the estimate differently:
    the trace of the longest prompts (prefill-heavy), the trace whose outputs are the largest share of its
    tokens (decode-heavy; both read from the raw files, within the top bin edges), and a task; the rate
    sweep's trace among them."""
    import pandas as pd
    import shared_data

    cfg = cfgmod.validate(default)
    chosen = cfg["replay"]["workloads"]
    assert len(chosen) < len(cfg["workloads"]) and cfg["online"]["trace"] in chosen
    assert any(cfg["workloads"][w]["kind"] == "task" for w in chosen)
    means = {}
    for name, w in cfg["workloads"].items():
        if w["kind"] != "trace":
            continue
        t = pd.read_csv(shared / shared_data.RAW_FILES[w["file"]], usecols=[w["input_column"], w["output_column"]])
        t = t[(t[w["input_column"]] <= cfg["bins"]["input"][-1]) & (t[w["output_column"]] <= cfg["bins"]["output"][-1])
              & (t[w["output_column"]] > 0)]
        means[name] = (t[w["input_column"]].mean(), t[w["output_column"]].mean())
    assert max(means, key=lambda n: means[n][0]) in chosen
    assert max(means, key=lambda n: means[n][1] / means[n][0]) in chosen


def test_replay_workloads_must_be_configured_and_hold_the_rate_sweeps_trace(default):
    bad = copy.deepcopy(default)
    bad["replay"]["workloads"] = ["azure_code_2023", "nope"]
    with pytest.raises(UserError, match="replay.workloads: 'nope' not in workloads"):
        cfgmod.validate(bad)
    bad["replay"]["workloads"] = ["azure_code_2023"]
    with pytest.raises(UserError, match="online.trace: 'burstgpt' is not among replay.workloads"):
        cfgmod.validate(bad)
    bad["replay"]["enabled"] = False  # no replay: no baseline asked for
    cfgmod.validate(bad)
    every = copy.deepcopy(default)
    every["replay"].pop("workloads", None)
    assert cfgmod.validate(every)["replay"]["workloads"] == list(default["workloads"])


def test_a_cells_own_batch_sizes_change_its_batch_points_only(default):
    """``batch_sizes`` of a cell entry: that cell's batch points at its own batch sizes (the other cells
    and the sweep family keep measurement.sweep_batch_sizes), and its params change, so it alone re-runs."""
    cfg = cfgmod.validate(copy.deepcopy(default))
    m = cfg["measurement"]
    own = copy.deepcopy(default)
    own["cells"] = [{"model": "tiny-llama", "variants": ["transformers-eager"], "decoding": ["greedy"]},
                    {"model": "tiny-olmo", "variants": ["transformers-eager"], "points": ["batch"],
                     "batch_sizes": [1, 2, 16], "shape": [32, 4]},
                    {"model": "tiny-olmoe", "variants": ["transformers-eager"], "points": ["batch"]}]
    own = cfgmod.validate(own)
    cells = {c.model: c for c in cfgmod.cell_table(own, "cpu-x")}
    assert cfgmod.points_of(own, cells["tiny-olmo"]) == [(32, 4, b, "sweep") for b in (1, 2, 16)]
    fixed = (m["sweep_fixed_input"], m["sweep_fixed_output"])
    assert [p[2] for p in cfgmod.points_of(own, cells["tiny-olmoe"])] == m["sweep_batch_sizes"]
    assert {p[:2] for p in cfgmod.points_of(own, cells["tiny-olmoe"])} == {fixed}
    grid = cfgmod.points_of(own, cells["tiny-llama"])
    assert {p[2] for p in grid if "sweep" in p[3]} == set(m["sweep_batch_sizes"])
    other = copy.deepcopy(default)
    other["cells"] = [{**own["cells"][0]}, {**own["cells"][1], "batch_sizes": [1]}, {**own["cells"][2]}]
    other = cfgmod.validate(other)
    changed = [c.model for c in cfgmod.cell_table(other, "cpu-x")
               if cfgmod.cell_params(other, c) != cfgmod.cell_params(own, cells[c.model])]
    assert changed == ["tiny-olmo"]
    bad = copy.deepcopy(default)
    bad["cells"] = [{"model": "tiny-olmo", "variants": ["transformers-eager"], "batch_sizes": [0]}]
    with pytest.raises(UserError, match="batch_sizes"):
        cfgmod.validate(bad)


def test_the_replay_and_rate_sweep_params_hold_what_each_job_reads_and_nothing_it_ignores(default):
    raw, default = default, cfgmod.validate(default)
    replay = cfgmod.cell_of(default, "x", "tiny-llama", "vllm-eager", "greedy")
    online = cfgmod.cell_of(default, "x", "tiny-llama", "vllm-online", "greedy")
    r, s = cfgmod.job_params(default, replay, "replay"), cfgmod.job_params(default, online, "serve")
    for p in (r, s):
        assert p["measurement"] == default["measurement"]
        assert p["top_edges"] == [default["bins"]["input"][-1], default["bins"]["output"][-1]]
    assert set(r["replay"]) == {"n_requests", "seed", "runs", "min_metered_s", "max_runs", "control_points",
                                "control_repeats"} and r["online"] == {}
    assert set(s["replay"]) == {"n_requests", "seed"}  # runs and control points are the replay's alone
    assert s["online"] == default["online"]
    # What the rate sweep reads changes with the protocol, and not with replay.runs.
    edited = cfgmod.validate({**raw, "replay": {**raw["replay"], "runs": 5}})
    assert cfgmod.job_params(edited, online, "serve") == s and cfgmod.job_params(edited, replay, "replay") != r
    for key, value in (("min_metered_s", 10), ("control_repeats", 6)):  # each re-runs the replay job only
        edited = cfgmod.validate({**raw, "replay": {**raw["replay"], key: value}})
        assert cfgmod.job_params(edited, online, "serve") == s and cfgmod.job_params(edited, replay, "replay") != r
    bare = cfgmod.validate({**raw, "replay": {"enabled": True}})  # the schema's defaults: the grid's repeats
    assert bare["replay"]["control_repeats"] is None and bare["replay"]["min_metered_s"] == 0
