# Configuration check, wildcard constraints and input functions shared by every stage.

import os
import re
import shutil
import sys
from pathlib import Path

import llm_energy
from llm_energy import UserError
from llm_energy import config as config_check
from llm_energy.cells import is_cpu_hardware, merged_cells
from llm_energy.hardware import detect

# Our own schema check (not snakemake.utils.validate): it fills the schema's defaults the same
# way, and adds cross-field rules and a one-line message naming the bad key.
try:
    _checked = config_check.validate(config)
except UserError as _err:
    sys.stderr.write(f"{_err}\n")
    sys.exit(1)
config.clear()
config.update(_checked)

# Cheap rules that check what a user placed (raw files, profiles, models) run before any
# measurement, so that a bad file stops the run before an expensive job, not after it.
CHEAP_FIRST = 50

# The package's modules a rule runs are inputs of that rule (package_code()), so that editing one
# re-plans that rule and what follows, as an edit of its script does. Measurement and replay rules do
# not list them: a code edit never re-measures (README, "Protecting measurements").
PACKAGE_DIR = Path(llm_energy.__file__).parent


def package_code(*modules):
    """Paths (relative, so a moved checkout re-plans nothing) of the package modules given by name;
    ``figures`` is the whole figures/ subpackage."""
    paths = []
    for m in modules:
        folder = PACKAGE_DIR / m
        paths += (
            sorted(folder.glob("*.py"))
            if folder.is_dir()
            else [PACKAGE_DIR / f"{m}.py"]
        )
    return [os.path.relpath(p) for p in paths]


DATA_DIR = config["data_dir"].rstrip("/")
MODELS_DIR = config["models_dir"].rstrip("/")
WORKLOADS = list(config["workloads"])


def _on_slurm():
    """A SLURM submit host, or inside a SLURM job: cells run on the cluster's nodes."""
    return bool(shutil.which("sbatch") or "SLURM_JOB_ID" in os.environ)


def _dry_run():
    """Whether this is a dry run (-n, --dry-run, or n among combined short flags such as -np).
    Snakemake has not parsed its command line when the Snakefile is read: look at it directly."""
    return any(
        a in ("--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", a)
        for a in sys.argv[1:]
    )


# A dry run for hardware this machine is not (e.g. `-n --config hardware=h100-80gb-hbm3` on a
# laptop) plans another machine's run: it measures nothing, so the machine checks do not apply.
PLANNING_ELSEWHERE = _dry_run() and config["hardware"] not in ("auto", detect())


def _missing_cells(slug):
    # On SLURM each measurement job refuses a node that is not `slug`, so `hardware:` may name the
    # nodes' hardware (README).
    if _on_slurm() or PLANNING_ELSEWHERE:
        return []
    files = [c.measurement for c in config_check.cell_table(config, slug)]
    return [f for f in files if not Path(f).exists()]


try:
    HARDWARE = config_check.check_hardware_choice(config, detect(), _missing_cells)
except UserError as _err:
    sys.stderr.write(f"{_err}\n")
    sys.exit(1)

# The cells of this run, in one table that every cell's path comes from: this machine's configured
# cells (measured here), then the same cells copied in from other machines (README, merging), which
# are checked, estimated and plotted beside them and never measured here.
HERE_CELLS = config_check.cell_table(config, HARDWARE)
CELL_TABLE = HERE_CELLS + merged_cells(HERE_CELLS, HARDWARE)


def _other_hardware_targets():
    """A measurement of another hardware named as a target: no rule makes it here (so that a copied
    file can never be deleted by a forced run), so say in one line what to do instead.
    """
    from llm_energy.measure import check_hardware

    # Snakemake has not parsed its targets yet when the Snakefile is read: look at the command line.
    for target in sys.argv[1:]:
        found = re.fullmatch(
            r"results/(?:measurements|replay|validation)/([a-z0-9][a-z0-9-]*)/.+\.parquet",
            os.path.normpath(str(target)),
        )
        if not found or found.group(1) == HARDWARE:
            continue
        if not Path(target).exists():
            check_hardware(found.group(1))  # raises: measure it there, copy it here
        raise UserError(
            f"{target} was copied in from a {found.group(1)} machine and is kept as it is (no rule "
            "makes it here): `snakemake --cores all` merges it; to replace it, re-measure it there "
            "and copy it again"
        )


def _cell_missing(model, variant, decoding):
    here = {c.key: c for c in HERE_CELLS}
    return not Path(here[model, variant, decoding].measurement).exists()


try:
    _other_hardware_targets()
    # on a cluster the nodes' GPUs count, not the login node's
    if not (_on_slurm() or PLANNING_ELSEWHERE):
        from llm_energy.hardware import visible_gpu_count

        config_check.check_gpus_suffice(
            config, HARDWARE, visible_gpu_count(), _cell_missing
        )
except UserError as _err:
    sys.stderr.write(f"{_err}\n")
    sys.exit(1)
BUILT_MODELS = [m for m, spec in config["models"].items() if spec["source"] == "build"]
HUB_MODELS = [m for m, spec in config["models"].items() if spec["source"] == "hub"]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


def _absent_raw(archives):
    """Raw files (or archive folders) of the config that are not in data_dir yet.

    Only these can be made by the fetch rules: a file that is present, placed by hand, linked in
    or downloaded by an earlier run, is a source file with no rule, so no --force, --forcerun or
    code change can make Snakemake delete it. A link to nothing stops here with one line.
    """
    names = {
        w["file"]
        for w in config["workloads"].values()
        if bool(w["archive_root"]) == archives
    }
    if not archives:
        names.add(config["measurement"]["prompt_file"])
    absent = []
    for name in sorted(names):
        path = Path(DATA_DIR) / name
        if path.is_symlink() and not path.exists():
            sys.stderr.write(
                f"{path} is a link to {os.readlink(path)}, which does not exist: "
                "fix or remove the link (a removed file is downloaded when it has a url)\n"
            )
            sys.exit(1)
        if not path.exists():
            absent.append(name)
    return absent


ABSENT_FILES = _absent_raw(archives=False)
ABSENT_FOLDERS = _absent_raw(archives=True)


wildcard_constraints:
    workload=_alternatives(WORKLOADS),
    model=_alternatives(config["models"]),
    variant=_alternatives(sorted({c.variant.name for c in HERE_CELLS})),
    decoding=_alternatives(sorted({c.decoding for c in HERE_CELLS})),
    hardware="[a-z0-9][a-z0-9-]*",
    filename=_alternatives(ABSENT_FILES),
    folder=_alternatives(ABSENT_FOLDERS),


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
    if config["measurement"]["prompts"] == "pg19":
        inputs["book"] = ancient(f"{DATA_DIR}/{config['measurement']['prompt_file']}")
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
    return config_check.cell_points(config, cell_of(wildcards).kinds)


def cell_decoding(wildcards):
    """The decoding settings a cell uses (none for greedy): changing one re-measures only its cells."""
    return config_check.decoding_settings(config, wildcards.decoding)


def cell_online(wildcards):
    """The online section, for online cells only."""
    return config_check.online_settings(config, cell_of(wildcards).variant)


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


def validation_files():
    """Replay validation of every grid cell measured here."""
    if not config["replay"]["enabled"]:
        return []
    return [c.validation for c in HERE_CELLS if c.has_grid]


# The paper's figures and tables: named, with their inputs and captions, in scripts/llm_energy/paper.py.
from llm_energy import paper as paper_registry

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
        elif "{workload}" in PAPER_FILES[kind]:
            files[kind] = expand(PAPER_FILES[kind], workload=workloads)
        else:
            files[kind] = PAPER_FILES[kind]
    # The package code that writes it (figures/ or tables.py) and the registry that names it.
    files["code"] = package_code(out.function.split(".")[0].split(":")[0], "paper")
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
    }
    return {s: values[s] for s in _paper_output(wildcards).settings}


def paper_caption(wildcards):
    """The report caption of a figure or table (workflow/report/output.rst renders it)."""
    return _paper_output(wildcards).caption


def all_targets():
    return (
        [f"{MODELS_DIR}/{m}" for m in BUILT_MODELS]
        + [f"results/profile/{w}.stats.json" for w in WORKLOADS]
        + [f"results/profile/{w}.parquet" for w in WORKLOADS]
        + [f"results/bins/{w}.parquet" for w in WORKLOADS]
        + measurement_files()
        + checked_files()
        + ["results/estimates/estimates.parquet"]
        + [f"paper/figures/{f}.pdf" for f in FIGURES]
        + [f"paper/tables/{t}.tex" for t in TABLES]
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
