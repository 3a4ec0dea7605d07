"""Variant names parsed in one place (llm_energy.pipeline.cells), and the files of a cell at every stage."""

import inspect
import itertools
import re
from pathlib import Path

import pytest
import yaml

from llm_energy import UserError
from llm_energy.pipeline import config as cfgmod
from llm_energy.pipeline.cells import Cell, Variant, compose, merged_cells, split_tensor_parallel

REPO = Path(__file__).resolve().parents[1]

# Every name the schema accepts, with what it stands for: (framework, mode, compiled, online, tensor parallel).
ACCEPTED = {
    "transformers-eager": ("transformers", "eager", False, False, 1),
    "transformers-compile": ("transformers", "compile", True, False, 1),
    "vllm-eager": ("vllm", "eager", False, False, 1),
    "vllm-cudagraph": ("vllm", "cudagraph", True, False, 1),
    "vllm-online": ("vllm", "online", False, True, 1),
    **{f"vllm-{mode}-tp{tp}": ("vllm", mode, mode == "cudagraph", mode == "online", tp)
       for mode in ("eager", "cudagraph", "online") for tp in (2, 4, 8)},
}


def _schema_pattern() -> str:
    items = cfgmod.load_schema()["properties"]["cells"]["items"]
    return items["properties"]["variants"]["items"]["pattern"]


def _candidates():
    """Names built from every framework, mode and suffix the parser might confuse."""
    frameworks = ("transformers", "vllm", "tgi", "")
    modes = ("eager", "compile", "cudagraph", "online", "turbo", "")
    suffixes = ("", "-tp1", "-tp2", "-tp3", "-tp4", "-tp8", "-tp16", "-tp02", "-tp", "-tp2-tp2", "-TP2")
    names = {f"{f}-{m}{s}" for f, m, s in itertools.product(frameworks, modes, suffixes)}
    return sorted(names | {"vllm", "transformers", "eager", "vllm-eager ", " vllm-eager", "VLLM-eager",
                           "vllm_eager", "vllm-eager-online", "vllm-online-eager", "-tp2"})


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_every_schema_variant_parses_to_its_attributes(name):
    v = Variant.parse(name)
    assert (v.framework, v.mode, v.compiled, v.online, v.tensor_parallel) == ACCEPTED[name]
    assert v.name == name and str(v) == name
    assert v.base == split_tensor_parallel(name)[0]


def test_parser_accepts_exactly_what_the_schema_accepts():
    pattern = _schema_pattern()
    accepted = set()
    for name in _candidates() + sorted(ACCEPTED):
        by_schema = re.fullmatch(pattern, name) is not None
        try:
            Variant.parse(name)
            parsed = True
        except UserError:
            parsed = False
        assert parsed == by_schema, name
        if parsed:
            accepted.add(name)
    assert accepted == set(ACCEPTED)


def test_default_config_variants_parse():
    cfg = cfgmod.validate(yaml.safe_load((REPO / "config.yaml").read_text()))
    names = {v for cell in cfg["cells"] for v in cell["variants"]}
    assert names and all(Variant.parse(n).name == n for n in names)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_round_trip(name):
    v = Variant.parse(name)
    assert compose(v.framework, v.mode, v.tensor_parallel) == name
    assert Variant.parse(v.name) == v and Variant.parse(v) is v
    assert hash(v) == hash(Variant.parse(name))  # frozen: usable as a key


@pytest.mark.parametrize("name", ["vllm-turbo", "transformers-eager-tp2", "vllm-eager-tp1", "vllm-eager-tp3",
                                  "vllm-eager-tp02", "vllm", "", "tgi-eager", "vllm-eager "])
def test_bad_names_are_one_line_user_errors(name):
    with pytest.raises(UserError) as err:
        Variant.parse(name)
    msg = str(err.value)
    assert "\n" not in msg and repr(name) in msg
    assert "transformers-eager" in msg and "-tp2, -tp4 or -tp8" in msg


def test_schema_error_names_the_same_choices():
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["cells"][0]["variants"] = ["vllm-turbo"]
    with pytest.raises(UserError) as schema_err:
        cfgmod.validate(cfg)
    with pytest.raises(UserError) as parse_err:
        Variant.parse("vllm-turbo")
    assert str(parse_err.value).split("choose one of ")[1] == str(schema_err.value).split("choose one of ")[1]


def test_split_tensor_parallel_is_lenient_for_tables():
    assert split_tensor_parallel("vllm-cudagraph-tp4") == ("vllm-cudagraph", 4)
    assert split_tensor_parallel("vllm-eager") == ("vllm-eager", 1)
    assert split_tensor_parallel("some-old-stack-tp16") == ("some-old-stack", 16)
    assert split_tensor_parallel("x-tpN") == ("x-tpN", 1)
    assert cfgmod.tensor_parallel("vllm-online-tp8") == 8 and cfgmod.tensor_parallel("vllm-online") == 1


# --- cells and their files ------------------------------------------------------------------------------

def test_cell_paths_follow_one_pattern():
    c = Cell.of("h100-80gb-hbm3", "tiny-llama", "vllm-cudagraph-tp2", "top-p", ("grid",))
    assert c.measurement == "results/measurements/h100-80gb-hbm3/tiny-llama/vllm-cudagraph-tp2/top-p.parquet"
    assert c.checked == "results/checked/h100-80gb-hbm3/tiny-llama/vllm-cudagraph-tp2/top-p.parquet"
    assert c.validation == "results/validation/h100-80gb-hbm3/tiny-llama/vllm-cudagraph-tp2/top-p.parquet"
    assert c.path("checked", ".json") == "results/checked/h100-80gb-hbm3/tiny-llama/vllm-cudagraph-tp2/top-p.json"
    assert c.path("measure", ".log", root="logs") == \
        "logs/measure/h100-80gb-hbm3/tiny-llama/vllm-cudagraph-tp2/top-p.log"
    assert c.key == ("tiny-llama", "vllm-cudagraph-tp2", "top-p") and c.variant.tensor_parallel == 2
    assert c.has_grid and not Cell.of("a6000", "m", "vllm-eager", "greedy", ("sweep",)).has_grid
    assert c.on("a6000").measurement == "results/measurements/a6000/tiny-llama/vllm-cudagraph-tp2/top-p.parquet"
    assert c.on("a6000").key == c.key


def test_cell_gpus_are_the_tensor_parallel_size_on_gpus_and_none_on_cpus():
    assert Cell.of("h100-80gb-hbm3", "m", "vllm-eager-tp4", "greedy").gpus == 4
    assert Cell.of("h100-80gb-hbm3", "m", "transformers-eager", "greedy").gpus == 1
    assert Cell.of("cpu-intel-xeon", "m", "vllm-eager-tp4", "greedy").gpus == 0


def test_a_cell_with_a_bad_variant_is_refused():
    with pytest.raises(UserError, match="unknown variant 'vllm-turbo'"):
        Cell.of("a6000", "m", "vllm-turbo", "greedy")


@pytest.fixture()
def cfg():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["cells"] = [{"model": "tiny-llama", "variants": ["transformers-eager", "vllm-online"], "points": ["grid"]},
                    {"model": "tiny-llama", "variants": ["vllm-online"], "decoding": ["beam"], "points": ["batch"]},
                    {"model": "tiny-llama", "variants": ["transformers-eager"], "points": ["sweep"]}]
    return cfgmod.validate(raw)


def test_cell_table_is_the_config_cells_in_order_with_their_families(cfg):
    table = cfgmod.cell_table(cfg, "a6000")
    assert [c.key for c in table] == cfgmod.cells(cfg)
    assert [c.kinds for c in table] == list(cfgmod.cell_kinds(cfg).values())
    assert table[0].kinds == ("grid", "sweep") and table[1].kinds == ("grid",) and table[2].kinds == ("batch",)
    assert {c.hardware for c in table} == {"a6000"}
    # A cell the config does not name sweeps the grid and the sweeps.
    assert cfgmod.cell_of(cfg, "a6000", "tiny-llama", "vllm-eager", "greedy").kinds == cfgmod.ALL_POINTS


def test_cell_params_are_what_the_job_gets(cfg):
    online_beam, eager_greedy = cfgmod.cell_of(cfg, "x", "tiny-llama", "vllm-online", "beam"), \
        cfgmod.cell_of(cfg, "x", "tiny-llama", "transformers-eager", "greedy")
    p = cfgmod.cell_params(cfg, online_beam)
    assert p["points"] == cfgmod.cell_points(cfg, ("batch",)) and online_beam.kinds == ("batch",)
    assert p["decoding"] == {"beam_width": cfg["decoding"]["beam_width"]}
    assert p["online"] == cfg["online"] and p["measurement"] is cfg["measurement"]
    q = cfgmod.cell_params(cfg, eager_greedy)
    padded = [p for p in q["points"] if p[3] == "padded"]
    assert q["points"] == cfgmod.cell_points(cfg, ("grid", "sweep")) + padded and q["decoding"] == {} \
        and q["online"] == {}
    m, top_in, low_out = cfg["measurement"], max(cfg["bins"]["input"]), min(cfg["bins"]["output"])
    assert {p[:2] for p in padded} == {*((i, m["sweep_fixed_output"]) for i in m["sweep_input_lengths"]),
                                       (m["sweep_fixed_input"], max(m["sweep_output_lengths"])),
                                       (max(m["sweep_input_lengths"]), max(m["sweep_output_lengths"])),
                                       (max(m["sweep_input_lengths"]), max(cfg["bins"]["output"])),
                                       (top_in, low_out)}
    assert (1024, 512) in {p[:2] for p in padded}  # the default's: a padded decode as long as a workload's
    assert {p[2] for p in padded} == {m["batch_size"]}


def test_only_static_batching_grid_cells_measure_padded_batches(cfg):
    def padded(variant, decoding="greedy"):
        return cfgmod.padded_points(cfg, cfgmod.cell_of(cfg, "x", "tiny-llama", variant, decoding))

    assert padded("transformers-eager") and padded("transformers-compile")
    assert not padded("vllm-eager") and not padded("vllm-online")  # continuous batching never pads
    assert not padded("transformers-eager", "speculative")  # one request at a time
    sweep_only = {**cfg, "cells": [{"model": "tiny-llama", "variants": ["transformers-eager"], "points": ["batch"],
                                    "decoding": ["greedy"]}]}
    assert not cfgmod.padded_points(sweep_only, cfgmod.cell_of(sweep_only, "x", "tiny-llama", "transformers-eager",
                                                               "greedy"))


def test_merged_cells_are_the_configured_cells_found_under_other_hardware(cfg, tmp_path):
    here = cfgmod.cell_table(cfg, "cpu-here")
    root = tmp_path / "results/measurements"
    for hw, cell in [("cpu-here", here[0]), ("h100-b", here[2]), ("a6000", here[1]), ("a6000", here[0]),
                     ("Not_A_Slug", here[0])]:
        f = root / hw / cell.model / cell.variant.name / f"{cell.decoding}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")
    (root / "h100-b" / "tiny-llama" / "vllm-eager").mkdir(parents=True)  # not a configured cell: ignored
    merged = merged_cells(here, "cpu-here", root)
    # Hardware in name order, then the config's order; this machine's own folder is not merged.
    assert [(c.hardware, c.key) for c in merged] == [("a6000", here[0].key), ("a6000", here[1].key),
                                                     ("h100-b", here[2].key)]
    assert merged[1].kinds == here[1].kinds
    assert merged_cells(here, "cpu-here", tmp_path / "absent") == []


# --- the backend declares what the measurement loop asks -----------------------------------------------

def test_backend_declares_what_the_loop_uses_and_the_loop_does_not_probe():
    from llm_energy.estimates import replay
    from llm_energy.measurement import cell
    from llm_energy.measurement import loop as measure
    from llm_energy.measurement.backends import Backend, make_backend

    assert Backend.prefix_caching is False
    b = make_backend("transformers-compile", "m")
    assert b.max_concurrent(8, 8) is None and b.prefix_caching is False
    assert b.variant == Variant.parse("transformers-compile") and b.tensor_parallel == 1
    for module in (measure, cell, replay):
        assert not re.search(r"getattr\((self\.)?backend", inspect.getsource(module)), module.__name__
    with pytest.raises(UserError):
        make_backend("vllm-turbo", "m")


@pytest.mark.parametrize("name, eager", [("vllm-eager", True), ("vllm-cudagraph-tp4", False),
                                         ("vllm-online-tp2", True)])
def test_vllm_engine_settings_come_from_the_variant(name, eager):
    from llm_energy.measurement.backends import make_backend
    from llm_energy.measurement.backends.vllm import engine_args

    args = engine_args(make_backend(name, "m"))
    assert args["enforce_eager"] is eager and args["tensor_parallel_size"] == Variant.parse(name).tensor_parallel


def test_the_decoding_names_have_one_home_the_schema_agrees_and_figures_order_by_it():
    from llm_energy.measurement.backends import DECODINGS as backend_decodings
    from llm_energy.paper.figures.data import decoding_order
    from llm_energy.pipeline.cells import DECODINGS

    items = cfgmod.load_schema()["properties"]["cells"]["items"]
    assert items["properties"]["decoding"]["items"]["enum"] == list(DECODINGS)
    assert backend_decodings is DECODINGS
    # Every strategy a cell can measure in the paper's order (prompt-lookup included); unknown ones last.
    assert decoding_order(["a-custom", "prompt-lookup", "top-p", "greedy", "speculative", "beam"]) == \
        ["greedy", "beam", "top-p", "speculative", "prompt-lookup", "a-custom"]
