"""Command line: ``python -m llm_energy {detect,check-config,build-model,measure,profile}``.

Every subcommand is also what a Snakemake rule runs, so one cell can be measured without Snakemake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llm_energy import UserError

# Each subcommand imports what it runs, inside its function: `lock-state` (run by scripts/run.sh before
# every run) and `--help` must not load pandas, torch or the measurement loop.

def _detect(args) -> None:
    from llm_energy.pipeline.hardware import detect

    print(detect())


def _check_config(args) -> None:
    from llm_energy.pipeline import config
    from llm_energy.pipeline.cells import Cell
    from llm_energy.pipeline.plan import on_slurm

    cfg = config.load(args.config)
    if not on_slurm([]):  # as the workflow: inside a SLURM job the nodes' GPUs count
        from llm_energy.pipeline.hardware import detect, visible_gpu_count

        here = detect()
        config.check_gpus_suffice(cfg, here, visible_gpu_count(), lambda m, v, d: not Path(
            Cell.of(here, m, v, d).measurement).exists())
    kinds = config.cell_kinds(cfg)
    n_points = sum(len(config.cell_points(cfg, k)) for k in kinds.values())
    print(f"{args.config}: ok ({len(cfg['models'])} models, {len(cfg['workloads'])} workloads, {len(kinds)} cells, "
          f"{n_points} points in all)")


def _lock_state(args) -> None:
    """Exit 0 when the working directory's Snakemake lock is stale (a killed run), 1 when there is
    none, 2 (with one line) when a Snakemake or one of its jobs still runs there."""
    from llm_energy.pipeline.rerun import lock_state

    state, detail = lock_state(args.workdir)
    if state == "busy":
        print(f"error: another Snakemake run, or a job of a killed one, is still running here ({detail}); "
              "wait for it to end or stop it, then rerun", file=sys.stderr)
        sys.exit(2)
    if state == "stale":
        print(detail)
    sys.exit(0 if state == "stale" else 1)


def _build_model(args) -> None:
    from llm_energy.models.build import build_model
    from llm_energy.pipeline import config

    cfg = config.load(args.config)
    spec = cfg["models"].get(args.model)
    if spec is None or spec["source"] != "build":
        raise UserError(f"model {args.model!r} is not a 'build' model in {args.config}")
    build_model(args.out or config.model_dir_of(cfg, args.model), config.architecture(spec), spec["seed"],
                spec["dtype"])


def _measure(args) -> None:
    from llm_energy.measurement.cell import CellParams, measure_cell, refuse_existing
    from llm_energy.pipeline import config
    from llm_energy.pipeline.cells import Cell
    from llm_energy.pipeline.hardware import detect

    hw = args.hardware or detect()
    out = args.out or Cell.of(hw, args.model, args.variant, args.decoding).measurement
    if not args.overwrite:
        refuse_existing(out)  # before the config is read and anything loads
    cfg = config.load(args.config)
    # What the Snakefile hands the cell's job (the measure_cell rule's params), read from the config.
    params = CellParams.from_config(cfg, config.cell_of(cfg, hw, args.model, args.variant, args.decoding))
    df = measure_cell(cfg, hardware=hw, model=args.model, variant=args.variant, decoding=args.decoding,
                      params=params, model_dir=args.model_dir, out=out, draft_dir=args.draft_dir,
                      overwrite=args.overwrite)
    print(f"{out}: {len(df)} rows")


def _profile(args) -> None:
    import json

    from llm_energy.pipeline import config
    from llm_energy.workloads.profile import load_trace, stats

    cfg = config.load(args.config)
    if args.workload not in cfg["workloads"]:
        raise UserError(f"workload {args.workload!r} is not in {args.config} ({', '.join(cfg['workloads'])})")
    spec = cfg["workloads"][args.workload]
    if spec["kind"] != "trace":
        raise UserError(f"workload {args.workload!r} is a task; profile it with the pipeline (it needs a tokenizer)")
    path = Path(cfg["data_dir"]) / spec["file"]
    if not path.exists():
        raise UserError(f"{path} is missing: place the trace there (or run the pipeline to download it)")
    df, info = load_trace(path, spec)
    print(json.dumps(stats(df, info), indent=2))


def _flops(args) -> None:
    from llm_energy.models.flops import Arch, decode_flops, generation_flops, prefill_flops

    for flag, value in (("--input-len", args.input_len), ("--output-len", args.output_len), ("--batch", args.batch)):
        if value < 1:
            raise UserError(f"flops: {flag} must be at least 1, got {value}")
    try:
        arch = Arch.from_file(args.model_config)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{args.model_config}: not a readable model config ({exc})") from None
    total = generation_flops(arch, args.input_len, args.output_len, args.batch, causal_half=args.causal_half)
    print(f"{total}")
    print(f"# prefill {args.batch * prefill_flops(arch, args.input_len, args.causal_half):.4e}, decode "
          f"{args.batch * decode_flops(arch, args.input_len, args.output_len):.4e}, total {total:.4e} FLOPs",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; user mistakes print one line and return 1."""
    from llm_energy.pipeline.hardware import detect
    from llm_energy.pipeline.rulekit import setup_logging

    p = argparse.ArgumentParser(prog="python -m llm_energy", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("detect", help="print this machine's hardware slug").set_defaults(fn=_detect)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("config", nargs="?", default="config.yaml")
    c.set_defaults(fn=_check_config)
    k = sub.add_parser("lock-state", help="exit 0 if a killed Snakemake run left its lock here (see scripts/run.sh)")
    k.add_argument("workdir", nargs="?", default=".")
    k.set_defaults(fn=_lock_state)
    b = sub.add_parser("build-model", help="build a random-weight model from the config")
    b.add_argument("model")
    b.add_argument("--config", default="config.yaml")
    b.add_argument("--out")
    b.set_defaults(fn=_build_model)
    m = sub.add_parser("measure", help="measure one cell (all its points) without Snakemake")
    m.add_argument("--config", default="config.yaml")
    m.add_argument("--hardware", default=None, help="hardware slug (default: detected)")
    m.add_argument("--model", required=True)
    m.add_argument("--variant", required=True)
    m.add_argument("--decoding", default="greedy")
    m.add_argument("--model-dir", help="model folder (default: models_dir/<model> or the model's path)")
    m.add_argument("--draft-dir", help="draft model folder for --decoding speculative (default: the config's)")
    m.add_argument("--out", help="measurement file (default: the pipeline's "
                   "results/measurements/<hardware>/<model>/<variant>/<decoding>.parquet)")
    m.add_argument("--overwrite", action="store_true", help="replace --out where it exists (default: refuse)")
    m.set_defaults(fn=_measure)
    pr = sub.add_parser("profile", help="statistics of one trace workload from the config")
    pr.add_argument("workload")
    pr.add_argument("--config", default="config.yaml")
    pr.set_defaults(fn=_profile)
    f = sub.add_parser("flops", help="FLOPs of a generation from a model's config.json")
    f.add_argument("--model-config", required=True)
    f.add_argument("--input-len", type=int, required=True)
    f.add_argument("--output-len", type=int, required=True)
    f.add_argument("--batch", type=int, default=1)
    f.add_argument("--causal-half", action="store_true", help="count only the causal half of prefill attention")
    f.set_defaults(fn=_flops)
    args = p.parse_args(argv)
    if getattr(args, "hardware", "x") is None:
        args.hardware = detect()
    setup_logging()
    try:
        args.fn(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
