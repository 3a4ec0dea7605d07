"""One measurement cell end to end: check the machine, load the model once, sweep, write the table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pandas as pd

from llm_energy import UserError
from llm_energy.measurement.backends import make_backend
from llm_energy.measurement.job import MeteredJob
from llm_energy.measurement.loop import run_job
from llm_energy.measurement.partial import partial_path
from llm_energy.measurement.prompts import BookPrompts, TaskPrompts
from llm_energy.measurement.protocol import Point, Protocol
from llm_energy.measurement.threads import limit_cpu_threads
from llm_energy.models.build import check_model_dir, model_facts, weights_kind
from llm_energy.pipeline import config as config_mod
from llm_energy.pipeline.cells import Cell, Variant
from llm_energy.pipeline.hardware import check_hardware, visible_gpu_count
from llm_energy.pipeline.io import write_parquet
from llm_energy.workloads.tasks import read_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellParams:
    """What a measurement job is handed, computed once: by the Snakefile (the measure_cell rule's
    params) or, on the command line, from the config (:meth:`from_config`)."""

    points: tuple[Point, ...]
    measurement: dict  # the config's measurement section: the protocol
    decoding: dict  # the decoding settings the cell's strategy uses (none for greedy)
    online: dict  # the online section, for online variants (else empty)
    prompts: dict | None = None  # config.cell_prompts: pg19, random or a task's texts (None: the measurement's)

    @classmethod
    def of(cls, points, measurement: dict, decoding: dict, online: dict, prompts: dict | None = None) -> CellParams:
        """From the rule's params: points as (input_len, output_len, batch_size, role)."""
        return cls(tuple(Point(*p) for p in points), dict(measurement), dict(decoding), dict(online),
                   dict(prompts) if prompts else None)

    @classmethod
    def from_config(cls, cfg: dict, cell: Cell) -> CellParams:
        """What the Snakefile hands the cell's job (``config.cell_params``), for running it without Snakemake."""
        return cls.of(**config_mod.cell_params(cfg, cell))


def cell_job(cfg: dict, cell: Cell, params: CellParams | None = None, *, model_dir: str | Path | None = None,
             longest: int, batch_size: int, draft_dir: str | Path | None = None) -> MeteredJob:
    """The setup every metering job shares (the cell, the replay, the rate sweep, the benchmarks): this
    machine checked against the cell's hardware and GPU count, the model folder checked (default: the
    config's, :func:`model_dir_of`), the cell's backend built for prompts+outputs up to ``longest`` tokens
    and batches up to ``batch_size``. Returns the :class:`~llm_energy.measurement.job.MeteredJob` to run it in (meter
    over exactly the backend's GPUs, device locks, load, close on every path)."""
    check_hardware(cell.hardware)
    check_gpus(cell.variant)
    params = params or CellParams.from_config(cfg, cell)
    model_dir = check_model_dir(model_dir or model_dir_of(cfg, cell.model))
    # Every metering job computes on the same threads, so that a replay meters what its grid did.
    limit_cpu_threads(params.measurement["cpu_threads"], cell.variant.framework)
    backend = cell_backend(cfg, cell, params, model_dir, longest, batch_size, draft_dir)
    return MeteredJob(backend, Protocol.from_config(params.measurement))


def cell_backend(cfg: dict, cell: Cell, params: CellParams, model_dir: Path, longest: int,
                 max_batch_size: int, draft_dir: str | Path | None = None):
    """The cell's backend (not loaded): the model's dtype and length limit, the measurement seed, the
    decoding settings, the draft model of speculative decoding, the online server's arrivals."""
    m, model = params.measurement, cell.model
    extra = {}
    if cell.variant.framework == "vllm":
        extra["kv_cache_gib"] = m["vllm_kv_cache_gib"]
    if cell.variant.online:
        o = params.online
        extra.update(arrival=o["arrival"], rate_per_s=o["rate_per_s"], startup_timeout_s=o["startup_timeout_s"])
    if cell.decoding == "speculative":
        draft = cfg["models"][model]["draft_model"]
        if not draft:
            raise UserError(f"decoding 'speculative' needs models.{model}.draft_model in the config")
        draft_dir = check_model_dir(draft_dir or model_dir_of(cfg, draft))
    return make_backend(
        cell.variant, str(model_dir), dtype=cfg["models"][model]["dtype"], decoding=cell.decoding, seed=m["seed"],
        max_model_len=config_mod.max_model_len(cfg, model) or longest, max_batch_size=max_batch_size,
        decoding_options=params.decoding, draft_dir=str(draft_dir) if draft_dir else None, **extra)


model_dir_of = config_mod.model_dir_of  # for the command line and the benchmarks


def check_gpus(variant: str | Variant) -> None:
    """Refuse a tensor-parallel variant on a machine with fewer GPUs than it spans."""
    variant = Variant.parse(variant)
    tp = variant.tensor_parallel
    if tp == 1:
        return

    have = visible_gpu_count()
    if have < tp:
        raise UserError(f"variant {variant.name!r} runs tensor parallel over {tp} GPUs, and this machine has {have}; "
                        f"measure it on a machine with {tp} GPUs and copy the file here")


def measure_cell(cfg: dict, *, hardware: str, model: str, variant: str, decoding: str,
                 params: CellParams | None = None, model_dir: str | Path | None = None,
                 out: str | Path | None = None, prompt_file: str | Path | None = None,
                 draft_dir: str | Path | None = None, overwrite: bool = True) -> pd.DataFrame:
    """Measure every point of the cell; write ``out`` (complete or absent) when given.

    ``params`` (points, protocol, decoding and online settings) are what the Snakefile computed for
    the cell; without them they are read from ``cfg`` the same way (:meth:`CellParams.from_config`).
    ``cfg`` gives the model (dtype, length limit, draft model, folder).

    Prompts are cut from ``prompt_file`` (default: ``data_dir/measurement.prompt_file``) when the
    config asks for PG-19 prompts, else seeded random token ids.

    ``overwrite=False`` (the command line without ``--overwrite``) refuses an existing ``out`` before
    anything loads, and where ``out`` appears during the sweep, writes beside it instead of over it.
    """
    if out is not None and not overwrite:
        refuse_existing(out)
    if model not in cfg["models"]:
        raise UserError(f"model {model!r} is not in the config ({', '.join(cfg['models'])})")
    cell = config_mod.cell_of(cfg, hardware, model, variant, decoding)
    params = params or CellParams.from_config(cfg, cell)
    m, points = params.measurement, list(params.points)
    longest = max(p.input_len + p.output_len for p in points)
    points_batch = max([*m["max_batch_probe"], *(p.batch_size for p in points)])
    job = cell_job(cfg, cell, params, model_dir=model_dir, longest=longest, batch_size=points_batch,
                   draft_dir=draft_dir)
    model_dir = Path(job.backend.model_dir)
    log.info("cell %s/%s/%s/%s: %d points x %d repeats", hardware, model, cell.variant, decoding, len(points),
             m["repeats"])
    prompts = _prompts(cfg, params, model_dir, prompt_file, points)
    df, power = run_job(job, points, prompts=prompts, partial_out=partial_path(out) if out is not None else None,
                        labels={"hardware": hardware, "model": model, "variant": cell.variant.name,
                                "decoding": decoding, "weights": weights_kind(model_dir), **model_facts(model_dir)})
    if out is not None:
        _write_measurement(df, power, out, overwrite)
    return df


def _prompts(cfg: dict, params: CellParams, model_dir: Path, prompt_file: str | Path | None, points: list[Point]):
    """The cell's prompts: a task's texts, the PG-19 book, or (None) seeded random ids. ``prompt_file``:
    the task's file or the book (default: in ``data_dir``)."""
    src = params.prompts or {"source": params.measurement["prompts"]}
    if src["source"] == "pg19":
        return _book_prompts(cfg, params.measurement, model_dir, prompt_file, points)
    if src["source"] != "task":
        return None
    from transformers import AutoTokenizer


    texts = read_texts(src["task"], prompt_file or Path(cfg["data_dir"]) / src["file"])
    return TaskPrompts(src["workload"], texts, src["template"], AutoTokenizer.from_pretrained(model_dir),
                       seed=params.measurement["seed"])


def _book_prompts(cfg: dict, m: dict, model_dir: Path, prompt_file: str | Path | None, points: list[Point]):
    """Prompts cut from the PG-19 book (``prompt_file``, default ``data_dir/measurement.prompt_file``)."""
    from transformers import AutoTokenizer


    book = prompt_file or Path(cfg["data_dir"]) / m["prompt_file"]
    return BookPrompts.from_file(book, AutoTokenizer.from_pretrained(model_dir), seed=m["seed"],
                                 longest=max(p.input_len for p in points))


def _write_measurement(df: pd.DataFrame, power: pd.DataFrame, out: str | Path, overwrite: bool) -> None:
    """Write the table and its power timeline; beside ``out`` where it appeared meanwhile and may not be
    overwritten (then one line says where)."""
    final = out
    if not overwrite and Path(out).exists():  # written by someone else while this cell was measured
        final = Path(out).with_name(f"{Path(out).stem}.measured-{_stamp(df)}.parquet")
    write_parquet(power if not power.empty else _EMPTY_POWER, power_path(final))
    write_parquet(df, final)
    if final != out:
        raise UserError(f"{out} appeared while this cell was measured ({_measured(out)}), so this measurement "
                        f"is in {final} (and its .power.parquet); move them over {out} to use them")


def _measured(path: str | Path) -> str:
    """When a measurement file was measured, as far as it says: its first ``start_time``."""
    try:
        times = pd.read_parquet(path, columns=["start_time"])["start_time"].dropna()
    except (OSError, ValueError, KeyError, ImportError):
        return "not readable as a measurement table"
    return f"measured {times.min()}" if len(times) else "no start_time in it"


def _stamp(df: pd.DataFrame) -> str:
    """A file-name-safe start time of a measurement (``20260102T000000Z``), or now."""
    from datetime import datetime

    try:
        t = pd.Timestamp(df["start_time"].dropna().min())
        return (t.tz_convert("UTC") if t.tzinfo else t).strftime("%Y%m%dT%H%M%SZ")
    except (KeyError, ValueError, TypeError):
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def refuse_existing(out: str | Path) -> None:
    """One line, before anything loads, where the command line would overwrite a measurement."""
    if Path(out).exists():
        raise UserError(f"{out} exists ({_measured(out)}); pass --overwrite to replace it, or --out elsewhere")


_EMPTY_POWER = pd.DataFrame({c: pd.Series(dtype=t) for c, t in [
    ("input_len", "int64"), ("output_len", "int64"), ("batch_size", "int64"), ("role", "str"),
    ("repeat", "int64"), ("phase", "str"), ("t_s", "float64"), ("power_w", "float64")]})


def power_path(out: str | Path) -> Path:
    """The power-timeline file that sits beside a measurement file."""
    out = Path(out)
    return out.with_name(out.stem + ".power.parquet")

