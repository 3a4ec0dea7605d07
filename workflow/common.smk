# Configuration check, wildcard constraints and input functions shared by every stage.

import os
import re
import sys
from pathlib import Path

from llm_energy import UserError
from llm_energy.pipeline import config as config_check
from llm_energy.pipeline.cells import CELL_PATH, is_cpu_hardware
from llm_energy.pipeline.plan import make_plan, package_code

# Everything checked before any job (llm_energy.pipeline.plan): the config against the schema (our own check,
# not snakemake.utils.validate: the same defaults, plus cross-field rules and one-line errors), the
# hardware this run measures, targets of another hardware, tensor-parallel cells this machine cannot
# run, and which raw files the fetch rules may make (only absent ones: a placed file is never a rule
# output, so no forced run can delete it).
try:
    PLAN = make_plan(config, sys.argv[1:])
except UserError as _err:
    sys.stderr.write(f"{_err}\n")
    sys.exit(1)
config.clear()
config.update(PLAN.config)
HARDWARE = PLAN.hardware
# The cells of this run, in one table that every cell's path comes from: this machine's configured
# cells (measured here), then the same cells copied in from other machines (docs/scale-out.md),
# checked, estimated and plotted beside them and never measured here.
HERE_CELLS = PLAN.here_cells
CELL_TABLE = PLAN.cell_table

# Cheap rules that check what a user placed (raw files, profiles, models) run before any
# measurement, so that a bad file stops the run before an expensive job, not after it.
CHEAP_FIRST = 50
# A measured cell is checked and replayed before the next cell is measured: its replay is metered
# minutes after its grid, on the host as the grid left it (a CPU's time-based estimate moves with
# the host over minutes; run3 of #15 measured the same VM 10-20 % slower than half an hour before).
REPLAY_NEXT = 10

DATA_DIR = config["data_dir"].rstrip("/")
MODELS_DIR = config["models_dir"].rstrip("/")
WORKLOADS = list(config["workloads"])
# The workloads each replay job serves (replay.workloads; every workload unless the config names some).
REPLAY_WORKLOADS = config["replay"]["workloads"]
BUILT_MODELS = [m for m, spec in config["models"].items() if spec["source"] == "build"]
HUB_MODELS = [m for m, spec in config["models"].items() if spec["source"] == "hub"]
GGUF_MODELS = [
    m for m, spec in config["models"].items() if spec["source"] == "pypi-gguf"
]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    workload=_alternatives(WORKLOADS),
    model=_alternatives(config["models"]),
    variant=_alternatives(sorted({c.variant.name for c in HERE_CELLS})),
    decoding=_alternatives(sorted({c.decoding for c in HERE_CELLS})),
    hardware="[a-z0-9][a-z0-9-]*",
    filename=_alternatives(PLAN.absent_files),
    folder=_alternatives(PLAN.absent_folders),


def workload_of_file(filename):
    """The config entry (a workload, or the prompt book) whose raw file is this name."""
    m = config["measurement"]
    if filename == m["prompt_file"]:
        return {"url": m["prompt_file_url"], "sha256": m["prompt_file_sha256"]}
    return next(w for w in config["workloads"].values() if w["file"] == filename)


def measure_inputs(wildcards):
    """The model, the draft model of speculative decoding, and the prompt book when prompts come
    from PG-19."""
    inputs = {"model": model_dir(wildcards)}
    inputs.update(draft_input(wildcards))
    prompts = cell_prompts(wildcards)
    if prompts["source"] == "pg19":
        inputs["book"] = ancient(f"{DATA_DIR}/{config['measurement']['prompt_file']}")
    elif (
        prompts["source"] == "task"
    ):  # a task workload's texts (prompt lookup needs real text)
        inputs["texts"] = ancient(f"{DATA_DIR}/{prompts['file']}")
    return inputs


def draft_input(wildcards):
    """The draft model's folder for speculative cells (ancient, like the model itself)."""
    if wildcards.decoding != "speculative":
        return {}
    return {
        "draft": ancient(model_folder(config["models"][wildcards.model]["draft_model"]))
    }


def cell_of(wildcards):
    """The cell of a job (a Cell; one the config does not name sweeps every point family)."""
    w = wildcards
    return config_check.cell_of(config, w.hardware, w.model, w.variant, w.decoding)


def cell_points(wildcards):
    """The points a cell sweeps: a change re-measures only the cells whose points changed."""
    return config_check.points_of(config, cell_of(wildcards))


def cell_prompts(wildcards):
    """Where a cell's prompts come from (PG-19, random ids, or a task's texts)."""
    return config_check.cell_prompts(config, cell_of(wildcards))


def cell_decoding(wildcards):
    """The decoding settings a cell uses (none for greedy): changing one re-measures only its cells."""
    return config_check.decoding_settings(config, wildcards.decoding)


def cell_online(wildcards):
    """The online section, for online cells only."""
    return config_check.online_settings(config, cell_of(wildcards).variant)


def replay_params(wildcards):
    """What a replay job reads besides its inputs (llm_energy.pipeline.config.job_params): a change re-runs it."""
    return config_check.job_params(config, cell_of(wildcards), "replay")


def serve_params(wildcards):
    """What a rate-sweep job reads besides its inputs: a change re-runs it (and no replay key it ignores)."""
    return config_check.job_params(config, cell_of(wildcards), "serve")


def cell_gpus(wildcards):
    """GPUs a measurement job holds: its tensor-parallel size on GPU hardware, none on CPU."""
    return cell_of(wildcards).gpus


def raw_path(wildcards):
    """Where a workload's raw file (or folder) lies."""
    return f"{DATA_DIR}/{config['workloads'][wildcards.workload]['file']}"


def profile_inputs(wildcards):
    """The raw file, and for a task the model whose tokenizer counts its tokens."""
    w = config["workloads"][wildcards.workload]
    inputs = {"raw": raw_path(wildcards)}
    if w["kind"] == "task":
        inputs["tokenizer"] = ancient(model_folder(w["tokenizer_model"]))
    return inputs


def model_dir(wildcards):
    """The model folder a cell loads; ancient() so that rebuilding the same seeded model never
    re-runs a measurement."""
    return ancient(model_folder(wildcards.model))


def model_folder(model):
    """llm_energy.pipeline.config.model_dir_of, spelled with MODELS_DIR as the model rules' output patterns are."""
    spec = config["models"][model]
    return spec["path"] if spec["source"] == "local" else f"{MODELS_DIR}/{model}"


def measured_model_dirs():
    """Each grid model's folder (its config.json gives the FLOPs); ancient, as rebuilding the
    same seeded model changes no shape."""
    return [ancient(model_folder(m)) for m in grid_models()]


def measure_env(wildcards):
    """conda: of the measurement rules: vLLM's CPU build for CPU hardware, its CUDA build on GPUs."""
    if is_cpu_hardware(wildcards.hardware):
        return "../../envs/measure-cpu.yaml"
    return "../../envs/measure-gpu.yaml"


def measurement_files():
    """This machine's measurement files: targets themselves, so that deleting one re-measures it
    (and re-checks, re-estimates and re-plots what came from it) instead of leaving stale results.
    """
    return [c.measurement for c in HERE_CELLS]


def all_measurement_files():
    """The measurement file behind every checked one: this machine's, then the merged ones (which
    already exist; measure_cell never makes them here, as it refuses another machine's hardware).
    """
    return [c.measurement for c in CELL_TABLE]


def checked_files():
    """Measurement tables with each row's validity: what every later stage reads (this machine's
    cells, then the cells of other hardware copied into results/measurements/)."""
    return [c.checked for c in CELL_TABLE]


VALIDATION = {
    **config["validation"],
    "min_window_s": (
        config["validation"]["min_window_s"]
        if config["validation"]["min_window_s"] is not None
        else config["measurement"]["min_window_s"]
    ),
    "sample_interval_s": config["measurement"]["power_sample_interval_s"],
}


def grid_checked_files():
    """The checked tables of cells that measure the bin grid: what workload estimates need."""
    return [c.checked for c in CELL_TABLE if c.has_grid]


def grid_models():
    """Models with at least one grid cell (their config.json gives the ideal's FLOPs)."""
    return sorted({c.model for c in HERE_CELLS if c.has_grid})


def serving_files():
    """The rate sweep of every online cell measured here (none without online.rates)."""
    if not config["online"]["rates"]:
        return []
    return [c.path("serving") for c in HERE_CELLS if c.variant.online]


def requests_files():
    """The per-request tables of the same rate sweeps (written beside serving_files())."""
    if not config["online"]["rates"]:
        return []
    return [c.path("requests") for c in HERE_CELLS if c.variant.online]


def replay_files(workloads=None):
    """The metered replays of every grid cell measured here, one file per (cell, workload) of
    ``workloads`` (default: replay.workloads); the rate sweep's offline baseline is online.trace's.
    """
    if not config["replay"]["enabled"]:
        return []
    workloads = REPLAY_WORKLOADS if workloads is None else workloads
    return [c.replay(w) for c in HERE_CELLS if c.has_grid for w in workloads]


def cell_replays(wildcards):
    """A cell's replay files, one per workload it replays: what its validation compares."""
    return [cell_of(wildcards).replay(w) for w in REPLAY_WORKLOADS]


def validation_files():
    """Replay validation of every grid cell measured here."""
    if not config["replay"]["enabled"]:
        return []
    return [c.validation for c in HERE_CELLS if c.has_grid]


# The paper's figures and tables: named, with their inputs and captions, in scripts/llm_energy/paper/registry.py.
from llm_energy.paper import registry as paper_registry

FIGURES = paper_registry.enabled(paper_registry.FIGURES, config)
TABLES = paper_registry.enabled(paper_registry.TABLES, config)
# Where each input a figure or table may read lies (the per-workload ones for each workload).
PAPER_FILES = {
    "estimates": "results/estimates/estimates.parquet",
    "by_bin": "results/estimates/by_bin.parquet",
    "savings": "results/estimates/savings.parquet",
    "profiles": "results/profile/{workload}.parquet",
    "stats": "results/profile/{workload}.stats.json",
    "bins": "results/bins/{workload}.summary.json",
}


def _paper_output(wildcards):
    return paper_registry.entry(wildcards.get("figure") or wildcards.get("table"))


def paper_inputs(wildcards):
    """The files one figure or table reads, by the input names of its registry entry: only those, so
    that a change re-draws only the outputs that read it."""
    out = _paper_output(wildcards)
    workloads = [
        w for w in WORKLOADS if out.workloads in ("all", config["workloads"][w]["kind"])
    ]
    files = {}
    for kind in out.inputs:
        if kind == "measurements":
            files[kind] = checked_files()
        elif kind == "validation":
            files[kind] = validation_files()
        elif kind == "serving":
            files[kind] = serving_files()
        elif kind == "requests":
            files[kind] = requests_files()
        elif kind == "replay":
            # Figure 9's offline baseline: the rate sweep's trace only
            files[kind] = replay_files(
                [w for w in [config["online"].get("trace")] if w in REPLAY_WORKLOADS]
            )
        elif "{workload}" in PAPER_FILES[kind]:
            files[kind] = expand(PAPER_FILES[kind], workload=workloads)
        else:
            files[kind] = PAPER_FILES[kind]
    # The package code that writes it (paper/figures/ or paper/tables.py), the registry that names it, and the
    # Pareto front and latency targets of the rate sweep (online/frontier.py) where it reads the sweep.
    extra = ["online.frontier"] if "serving" in out.inputs else []
    files["code"] = package_code(
        f"paper.{out.function.split('.')[0].split(':')[0]}", "paper.registry", *extra
    )
    return files


def paper_settings(wildcards):
    """The config values one figure or table takes (its registry entry's settings), by keyword."""
    values = {
        "fixed_input": config["measurement"]["sweep_fixed_input"],
        "fixed_output": config["measurement"]["sweep_fixed_output"],
        "task_workloads": [
            w for w in WORKLOADS if config["workloads"][w]["kind"] == "task"
        ],
        "input_edges": config["bins"]["input"],
        "output_edges": config["bins"]["output"],
        "latency_targets": config["online"].get("latency_targets") or {},
    }
    return {s: values[s] for s in _paper_output(wildcards).settings}


def paper_caption(wildcards):
    """The report caption of a figure or table (workflow/report/output.rst renders it)."""
    return _paper_output(wildcards).caption


def all_targets():
    return (
        [f"{MODELS_DIR}/{m}" for m in BUILT_MODELS + GGUF_MODELS]
        + [f"results/profile/{w}.stats.json" for w in WORKLOADS]
        + [f"results/profile/{w}.parquet" for w in WORKLOADS]
        + [f"results/bins/{w}.parquet" for w in WORKLOADS]
        + measurement_files()
        + checked_files()
        + ["results/estimates/estimates.parquet"]
        + serving_files()
        + [f"paper/figures/{f}.pdf" for f in FIGURES]
        + [f"paper/tables/{t}.tex" for t in TABLES]
        + ["paper/findings.md"]
        # the summary a person reads first (printed by the Snakefile's onsuccess)
        + ["paper/summary.md"]
        + ["paper/main.pdf.txt"]
        # provenance of the run: workflow/rules/manifest.smk
        + ["results/manifest.json"]
    )


def raw_url(wildcards):
    return workload_of_file(wildcards.filename)["url"]


def raw_sha256(wildcards):
    return workload_of_file(wildcards.filename)["sha256"]


def archive_spec(wildcards):
    w = workload_of_file(wildcards.folder)
    return {
        "url": w["url"],
        "sha256": w["sha256"],
        "root": w["archive_root"],
        "include": w["archive_include"],
    }


def workload_spec(wildcards):
    return config["workloads"][wildcards.workload]


def model_architecture(wildcards):
    """A built model's architecture: its architecture_file with the config's overrides on top."""
    return config_check.architecture(config["models"][wildcards.model])


def model_dtype(wildcards):
    return config["models"][wildcards.model]["dtype"]


def model_hub(wildcards):
    spec = config["models"][wildcards.model]
    return {"hub_id": spec["hub_id"], "revision": spec["revision"]}


def model_seed(wildcards):
    return config["models"][wildcards.model]["seed"]
