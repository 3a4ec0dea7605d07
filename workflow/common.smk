# Configuration check, wildcard constraints and input functions shared by every stage.

import re
import sys

from llm_energy import UserError
from llm_energy import config as config_check
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

HARDWARE = detect() if config["hardware"] == "auto" else config["hardware"]
DATA_DIR = config["data_dir"].rstrip("/")
MODELS_DIR = config["models_dir"].rstrip("/")
WORKLOADS = list(config["workloads"])
CELLS = config_check.cells(config)
POINTS = config_check.cell_points(config)
BUILT_MODELS = [m for m, spec in config["models"].items() if spec["source"] == "build"]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    workload=_alternatives(WORKLOADS),
    model=_alternatives(config["models"]),
    variant=_alternatives(sorted({c[1] for c in CELLS})),
    decoding=_alternatives(sorted({c[2] for c in CELLS})),
    hardware="[a-z0-9][a-z0-9-]*",
    filename=_alternatives(sorted({w["file"] for w in config["workloads"].values()})),


def workload_of_file(filename):
    """The workload config entry whose raw file is this name."""
    return next(w for w in config["workloads"].values() if w["file"] == filename)


def raw_file(wildcards):
    return f"{DATA_DIR}/{config['workloads'][wildcards.workload]['file']}"


def model_dir(wildcards):
    """The model folder a cell loads; ancient() so that rebuilding the same seeded model never
    re-runs a measurement."""
    spec = config["models"][wildcards.model]
    return ancient(
        spec["path"] if spec["source"] == "local" else f"{MODELS_DIR}/{wildcards.model}"
    )


MEASURED_MODELS = sorted({c[0] for c in CELLS})


def model_folder(model):
    spec = config["models"][model]
    return spec["path"] if spec["source"] == "local" else f"{MODELS_DIR}/{model}"


def measured_model_dirs():
    """Each measured model's folder (its config.json gives the FLOPs); ancient, as rebuilding the
    same seeded model changes no shape."""
    return [ancient(model_folder(m)) for m in MEASURED_MODELS]


def measurement_files():
    return [f"results/measurements/{HARDWARE}/{m}/{v}/{d}.parquet" for m, v, d in CELLS]


def validation_files():
    if not config["replay"]["enabled"]:
        return []
    return [f"results/validation/{HARDWARE}/{m}/{v}/{d}.parquet" for m, v, d in CELLS]


FIGURES = ["fig1_workload_energy", "fig2_prefill_decode"] + (
    ["fig_replay_validation"] if config["replay"]["enabled"] else []
)
TABLES = ["table1_workloads", "table4_estimates"]


def all_targets():
    return (
        [f"{MODELS_DIR}/{m}" for m in BUILT_MODELS]
        + [f"results/profile/{w}.stats.json" for w in WORKLOADS]
        + [f"results/bins/{w}.parquet" for w in WORKLOADS]
        + measurement_files()
        + ["results/estimates/estimates.parquet"]
        + [f"paper/figures/{f}.pdf" for f in FIGURES]
        + [f"paper/tables/{t}.tex" for t in TABLES]
    )


def raw_url(wildcards):
    return workload_of_file(wildcards.filename)["url"]


def raw_sha256(wildcards):
    return workload_of_file(wildcards.filename)["sha256"]


def workload_spec(wildcards):
    return config["workloads"][wildcards.workload]


def model_architecture(wildcards):
    return config["models"][wildcards.model]["architecture"]


def model_seed(wildcards):
    return config["models"][wildcards.model]["seed"]
