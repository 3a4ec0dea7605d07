"""What the workflow settles when Snakemake reads it, before any job: the config checked, the hardware
this run measures, the table of cells, which raw files rules may make, and the package code a rule runs.

Every check here is cheap and raises a one-line :class:`~llm_energy.UserError`, so that a mistake stops
the run before an expensive job. ``workflow/common.smk`` calls :func:`make_plan` once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from llm_energy import UserError
from llm_energy.pipeline import config as config_mod
from llm_energy.pipeline.cells import CELL_KEYS, Cell, merged_cells
from llm_energy.pipeline.hardware import check_hardware, detect, visible_gpu_count

PACKAGE_DIR = Path(__file__).parent.parent
_RESULT_OF_A_HARDWARE = re.compile(r"results/(?:measurements|replay|validation)/([a-z0-9][a-z0-9-]*)/.+\.parquet")


@dataclass(frozen=True)
class Plan:
    config: dict  # validated, schema defaults filled
    hardware: str  # the hardware this run measures
    here_cells: list[Cell]  # this machine's configured cells
    cell_table: list[Cell]  # those, then the same cells copied in from other machines
    absent_files: list[str]  # raw files of data_dir that fetch_raw may make (absent now)
    absent_folders: list[str]  # raw folders fetch_archive may make


def on_slurm(argv: list[str]) -> bool:
    """Running through SLURM (the `slurm` executor or a profile that names it, on the command line or
    in SNAKEMAKE_PROFILE), or inside a SLURM job: cells run on the cluster's nodes, so this machine's
    hardware and GPUs do not count. Having SLURM's client installed is not enough: a local run on a
    submit host is still checked against the machine it runs on."""
    if "SLURM_JOB_ID" in os.environ:
        return True
    return any("slurm" in a for a in [*argv, os.environ.get("SNAKEMAKE_PROFILE", "")])


# Commands that plan or list and run no job.
_RUNS_NOTHING = {"--dry-run", "--dryrun", "--list-conda-envs", "--list-changes", "--lc", "--summary",
                 "--detailed-summary", "-S", "-D", "--dag", "--rulegraph", "--filegraph", "--lint",
                 "--list-rules", "--list-target-rules"}


def is_dry_run(argv: list[str]) -> bool:
    """A run that executes no job: ``-n``, ``--dry-run``, ``n`` among combined short flags such as
    ``-np``, or a planning command (``--list-conda-envs``, ``--summary``, ``--dag``, ...). Snakemake has
    not parsed its command line when the Snakefile is read, so the arguments are looked at directly."""
    return any(a in _RUNS_NOTHING or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", a) for a in argv)


def make_plan(config: dict, argv: list[str]) -> Plan:
    """Check everything that can be checked before any job; raise a one-line UserError otherwise."""
    cfg = config_mod.validate(config)
    here = detect()
    # A dry run for hardware this machine is not (e.g. `-n --config hardware=h100-80gb-hbm3` on a
    # laptop) plans another machine's run: it measures nothing, so the machine checks do not apply.
    elsewhere = is_dry_run(argv) and cfg["hardware"] not in ("auto", here)
    machine_checks = not (on_slurm(argv) or elsewhere)  # on a cluster the nodes' hardware counts

    def missing(slug: str) -> list[str]:
        if not machine_checks:
            return []
        return [c.measurement for c in config_mod.cell_table(cfg, slug) if not Path(c.measurement).exists()]

    hardware = config_mod.check_hardware_choice(cfg, here, missing)
    here_cells = config_mod.cell_table(cfg, hardware)
    refuse_other_hardware_targets(argv, hardware)
    if machine_checks:
        measured = {c.key: c for c in here_cells}
        config_mod.check_gpus_suffice(cfg, hardware, visible_gpu_count(),
                                      lambda *key: not Path(measured[key].measurement).exists())
    cell_table = here_cells + merged_cells(here_cells, hardware)
    check_cell_folders(cell_table, hardware)
    return Plan(cfg, hardware, here_cells, cell_table, absent_raw(cfg, archives=False), absent_raw(cfg, archives=True))


def rows_cell(path: str | Path) -> dict[str, str] | None:
    """The cell a measurement file's rows name (its one value of each of CELL_KEYS), read from those four
    columns alone; None when the file cannot say (unreadable, a column missing or holding several values:
    check_cell reports those with the whole table)."""
    try:
        table = pq.read_table(path, columns=CELL_KEYS)
        values = {k: table.column(k).unique().to_pylist() for k in CELL_KEYS}
    except Exception:  # noqa: BLE001 - any damage is check_cell's to report, in one line
        return None
    if any(len(v) != 1 or v[0] is None for v in values.values()):
        return None
    return {k: str(v[0]) for k, v in values.items()}


def check_cell_folders(cells: list[Cell], hardware: str) -> None:
    """A measurement file in a folder its rows do not name (copied under the wrong hardware, say) is
    refused before any job, with the folder it belongs in: there it is merged as that cell."""
    for cell in cells:
        path = Path(cell.measurement)
        rows = rows_cell(path) if path.is_file() else None
        folder = {"hardware": cell.hardware, "model": cell.model, "variant": cell.variant.name,
                  "decoding": cell.decoding}
        if rows is None or rows == folder:
            continue
        key = next(k for k in CELL_KEYS if rows[k] != folder[k])
        dest = Path("results/measurements", rows["hardware"], rows["model"], rows["variant"],
                    f"{rows['decoding']}.parquet")
        whose = ("this machine's measurement of that cell" if rows["hardware"] == hardware
                 else f"merged as {rows['hardware']}'s cell")
        todo = (f"{dest} exists already: keep one of the two and delete the other" if dest.exists()
                else f"move it to {dest}, where it is {whose}")
        raise UserError(f"{path}: its rows are of {key} {rows[key]!r}, but its folder says {folder[key]!r}: {todo}")


def refuse_other_hardware_targets(argv: list[str], hardware: str) -> None:
    """A measurement of another hardware named as a target: no rule makes it here (so that a copied
    file can never be deleted by a forced run), so say in one line what to do instead."""
    for target in argv:
        found = _RESULT_OF_A_HARDWARE.fullmatch(os.path.normpath(target))
        if not found or found.group(1) == hardware:
            continue
        if not Path(target).exists():
            check_hardware(found.group(1))  # raises: measure it there, copy it here
        raise UserError(f"{target} was copied in from a machine detected as {found.group(1)} and is kept as it is "
                        "(no rule makes it here): `snakemake --cores all` merges it; to replace it, re-measure it "
                        "there and copy it again")


def absent_raw(cfg: dict, *, archives: bool) -> list[str]:
    """Raw files (or archive folders) of the config that are not in data_dir yet.

    Only these can be made by the fetch rules: a file that is present, placed by hand, linked in or
    downloaded by an earlier run, is a source file with no rule, so no --force, --forcerun or code
    change can make Snakemake delete it. A link to nothing stops here with one line.
    """
    names = {w["file"] for w in cfg["workloads"].values() if bool(w["archive_root"]) == archives}
    if not archives:
        names.add(cfg["measurement"]["prompt_file"])
    absent = []
    for name in sorted(names):
        path = Path(cfg["data_dir"]) / name
        if path.is_symlink() and not path.exists():
            raise UserError(f"{path} is a link to {os.readlink(path)}, which does not exist: fix or remove the "
                            "link (a removed file is downloaded when it has a url)")
        if not path.exists():
            absent.append(name)
    return absent


def package_code(*modules: str) -> list[str]:
    """The package modules a rule runs, as input paths (relative, so a moved checkout re-plans
    nothing): editing one re-plans that rule and what follows, as an edit of its script does. A name
    is dotted under the package (``estimates.estimate``); one that is a folder (``paper.figures``)
    stands for all its modules."""
    paths: list[Path] = []
    for m in modules:
        m = m.replace(".", "/")
        folder = PACKAGE_DIR / m
        paths += sorted(folder.glob("*.py")) if folder.is_dir() else [PACKAGE_DIR / f"{m}.py"]
    return [os.path.relpath(p) for p in paths]
