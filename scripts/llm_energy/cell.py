"""One measurement cell end to end: check the machine, load the model once, sweep, write the table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from . import config as config_mod
from .backends import make_backend
from .io import write_parquet
from .measure import Point, check_hardware, run_cell
from .models import check_model_dir, weights_kind

log = logging.getLogger(__name__)


def model_dir_of(cfg: dict, model: str) -> Path:
    """Where a configured model lives: its own ``path`` or ``models_dir/<name>`` for built ones."""
    spec = cfg["models"][model]
    return Path(spec["path"]) if spec["source"] == "local" else Path(cfg["models_dir"]) / model


def measure_cell(cfg: dict, *, hardware: str, model: str, variant: str, decoding: str,
                 model_dir: str | Path | None = None, out: str | Path | None = None) -> pd.DataFrame:
    """Measure every point of the cell; write ``out`` (complete or absent) when given."""
    check_hardware(hardware)
    if model not in cfg["models"]:
        from . import UserError

        raise UserError(f"model {model!r} is not in the config ({', '.join(cfg['models'])})")
    model_dir = check_model_dir(model_dir or model_dir_of(cfg, model))
    m = cfg["measurement"]
    if m["cpu_threads"]:
        import torch

        torch.set_num_threads(m["cpu_threads"])
    points = [Point(*p) for p in config_mod.cell_points(cfg)]
    longest = max(p.input_len + p.output_len for p in points)
    backend = make_backend(
        variant, str(model_dir), dtype=cfg["models"][model]["dtype"], decoding=decoding, seed=m["seed"],
        max_model_len=config_mod.max_model_len(cfg, model) or longest,
        max_batch_size=max(p.batch_size for p in points),
        **({"kv_cache_gib": m["vllm_kv_cache_gib"]} if variant.startswith("vllm-") else {}))
    log.info("cell %s/%s/%s/%s: %d points x %d repeats", hardware, model, variant, decoding, len(points),
             m["repeats"])
    df = run_cell(backend, points, meter_kind=m["meter"], watts_per_core=m["cpu_watts_per_core"],
                  require_measured=m["require_measured_energy"], warmup_batches=m["warmup_batches"],
                  repeats=m["repeats"], seed=m["seed"], min_window_s=m["min_window_s"],
                  labels={"hardware": hardware, "model": model, "variant": variant, "decoding": decoding,
                          "weights": weights_kind(model_dir)})
    if out is not None:
        write_parquet(df, out)
    return df
