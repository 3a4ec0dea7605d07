import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_energy import UserError
from llm_energy import config as cfgmod

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


def test_cpu_full_overlay_is_valid_and_only_enlarges_the_replay(default):
    """config/cpu-full.yaml, merged into config.yaml as Snakemake merges --configfile: a valid config
    whose only change is the larger replay sample that the default trades away for time."""
    from snakemake.utils import update_config

    overlay = yaml.safe_load((REPO / "config" / "cpu-full.yaml").read_text())
    merged = copy.deepcopy(default)
    update_config(merged, overlay)
    full, base = cfgmod.validate(merged), cfgmod.validate(default)
    assert full["replay"]["n_requests"] == 2 * base["replay"]["n_requests"] == 64
    full["replay"]["n_requests"] = base["replay"]["n_requests"]
    assert full == base
