"""Command line of the llm_energy pipeline: python -m llm_energy SUBCOMMAND [options].

The pipeline's steps one at a time, without Snakemake: list a config's cells, check a config as a
Snakemake run would merge it, measure one cell (or some of its points) as its Snakemake job does.
python -m llm_energy SUBCOMMAND --help explains each subcommand's options.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from llm_energy import UserError

# Each subcommand imports what it runs, inside its function: `lock-state` (run by scripts/run.sh before
# every run) and `--help` must not load pandas, torch or the measurement loop.

EPILOG = """examples:
  python -m llm_energy cells                       the configured cells and how many points each sweeps
  python -m llm_energy check-config my.yaml        config.yaml merged with my.yaml, as snakemake --configfile
  python -m llm_energy measure --model tiny-llama --variant transformers-eager --points 64x8x1 --out one.parquet
"""
DEFAULT_CONFIG = "config.yaml"  # the Snakefile's configfile, read from the current folder
POINT = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def _detect(args) -> None:
    from llm_energy.pipeline.hardware import detect

    print(detect())


def _check_config(args) -> None:
    from llm_energy.pipeline import config
    from llm_energy.pipeline.cells import Cell
    from llm_energy.pipeline.plan import on_slurm

    base = None if args.no_base else args.base
    cfg = config.load_overlays(args.files, base)
    if not on_slurm([]):  # as the workflow: inside a SLURM job the nodes' GPUs count
        from llm_energy.pipeline.hardware import detect, visible_gpu_count

        here = detect()
        config.check_gpus_suffice(cfg, here, visible_gpu_count(), lambda m, v, d: not Path(
            Cell.of(here, m, v, d).measurement).exists())
    kinds = config.cell_kinds(cfg)
    n_points = sum(len(config.cell_points(cfg, k)) for k in kinds.values())
    named = [str(base)] if base is not None else []
    named += [str(f) for f in args.files if base is None or not _same_file(f, base)]
    print(f"{' + '.join(named)}: ok ({len(cfg['models'])} models, {len(cfg['workloads'])} workloads, "
          f"{len(kinds)} cells, {n_points} points in all)")


def _same_file(a, b) -> bool:
    return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)


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
        built = [m for m, s in cfg["models"].items() if s["source"] == "build"]
        raise UserError(f"model {args.model!r} is not a 'build' model in {args.config}; choose one of "
                        f"{', '.join(built) or '(none configured)'}")
    build_model(args.out or config.model_dir_of(cfg, args.model), config.architecture(spec), spec["seed"],
                spec["dtype"])


def _hardware_of(cfg: dict, given: str | None) -> str:
    """The hardware a listing is for: ``--hardware``, else the config's, else this machine's."""
    from llm_energy.pipeline.hardware import detect

    return given or (cfg["hardware"] if cfg.get("hardware", "auto") != "auto" else detect())


def _cells(args) -> None:
    from llm_energy.pipeline import config

    cfg = config.load(args.config)
    hw = _hardware_of(cfg, args.hardware)
    table = [(c, config.points_of(cfg, c)) for c in config.cell_table(cfg, hw)]
    head = ("hardware", "model", "variant", "decoding", "points")
    rows = [(c.hardware, c.model, c.variant.name, c.decoding, str(len(p))) for c, p in table]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for k, row in enumerate([head, *rows]):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if args.points and k:
            print("    " + " ".join(f"{i}x{o}x{b}({role})" for i, o, b, role in table[k - 1][1]))
    print(f"{len(rows)} cells, {sum(len(p) for _, p in table)} points in all ({args.config})")


def parse_points(text: str) -> list[tuple[int, int, int]]:
    """``64x8x1,128x8x4`` -> [(64, 8, 1), (128, 8, 4)]: input x output tokens x batch size."""
    shapes = []
    for item in (s.strip() for s in text.split(",")):
        found = POINT.match(item)
        if not found or min(int(g) for g in found.groups()) < 1:
            raise UserError(f"--points: {item!r} is not INPUTxOUTPUTxBATCH with positive numbers "
                            f"(e.g. --points 64x8x1,128x8x4)")
        shapes.append(tuple(int(g) for g in found.groups()))
    return shapes


def select_points(points, shapes: list[tuple[int, int, int]], cell_name: str):
    """The cell's points of the given shapes (a shape can be measured both plainly and padded: both
    are kept); one line for a shape the cell does not sweep."""
    have = {(p.input_len, p.output_len, p.batch_size) for p in points}
    missing = [s for s in shapes if s not in have]
    if missing:
        raise UserError(f"--points: {'x'.join(map(str, missing[0]))} is not one of the {len(points)} points of "
                        f"cell {cell_name} (list them: python -m llm_energy cells --points)")
    return tuple(p for p in points if (p.input_len, p.output_len, p.batch_size) in set(shapes))


def _check_names(args) -> None:
    """The variant and decoding names, before anything is read; one line naming the valid ones."""
    from llm_energy.pipeline.cells import DECODINGS, Variant

    Variant.parse(args.variant)
    if args.decoding not in DECODINGS:
        raise UserError(f"unknown decoding {args.decoding!r}; choose one of {', '.join(DECODINGS)}")


def _lock_wait(args) -> None:
    """--no-wait / --lock-timeout: what the device lock reads (the variable a Snakemake job reads too)."""
    from llm_energy.measurement.locks import LOCK_TIMEOUT_ENV

    if args.no_wait:
        os.environ[LOCK_TIMEOUT_ENV] = "0"
    elif args.lock_timeout is not None:
        if args.lock_timeout < 0:
            raise UserError(f"--lock-timeout must be 0 or more seconds, got {args.lock_timeout:g}")
        os.environ[LOCK_TIMEOUT_ENV] = f"{args.lock_timeout:g}"


def _measure(args) -> None:
    from dataclasses import replace

    from llm_energy.measurement.cell import CellParams, measure_cell, refuse_existing
    from llm_energy.pipeline import config
    from llm_energy.pipeline.cells import Cell

    _check_names(args)
    shapes = parse_points(args.points) if args.points else None
    pipeline_file = Cell.of(args.hardware, args.model, args.variant, args.decoding).measurement
    if shapes and not args.out:
        raise UserError(f"--points measures part of the cell: name its file with --out (the pipeline's "
                        f"{pipeline_file} holds every point)")
    out = args.out or pipeline_file
    if not args.overwrite:
        refuse_existing(out)  # before the config is read and anything loads
    cfg = config.load(args.config)
    if args.model not in cfg["models"]:
        raise UserError(f"model {args.model!r} is not in {args.config}; choose one of {', '.join(cfg['models'])}")
    _lock_wait(args)
    # What the Snakefile hands the cell's job (the measure_cell rule's params), read from the config.
    cell = config.cell_of(cfg, args.hardware, args.model, args.variant, args.decoding)
    params = CellParams.from_config(cfg, cell)
    if shapes:
        name = f"{args.model}/{args.variant}/{args.decoding}"
        params = replace(params, points=select_points(params.points, shapes, name))
    df = measure_cell(cfg, hardware=args.hardware, model=args.model, variant=args.variant,
                      decoding=args.decoding, params=params, model_dir=args.model_dir, out=out,
                      draft_dir=args.draft_dir, overwrite=args.overwrite)
    print(energy_line(df, out))


def energy_line(df, out) -> str:
    """The cell's last line: its file, its rows, and its energy with the meter's label."""
    import numpy as np

    ok = df[df["status"] == "ok"] if "status" in df else df.iloc[0:0]
    rows = f"{len(df)} rows" + ("" if len(ok) == len(df) else f", {len(ok)} of them ok")
    if ok.empty:
        return f"{out}: {rows}; no point ran, so no energy"
    source = ", ".join(sorted(ok["energy_source"].astype(str).unique())) if "energy_source" in ok else "?"
    prefill_own = ok.get("prefill_output_len", np.nan) == ok["output_len"]  # a shared prefill counts once
    metered = float(np.nansum(ok["energy_j"] * ok.get("n_batches_in_window", 1))
                    + np.nansum(ok["prefill_energy_j"] * ok.get("n_prefill_batches_in_window", 0) * prefill_own))
    per_point = ok.groupby(["input_len", "output_len", "batch_size", "role"])["energy_j"].median()
    return (f"{out}: {rows} ({len(per_point)} points); energy ({source}): {metered:.4g} J metered in all, "
            f"per point median {per_point.median():.4g} J per batch ({per_point.min():.3g} to "
            f"{per_point.max():.3g} J)")


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


# --- the parser: every option has help text, and the names it takes are listed there -----------------

def _option_of(argv: list[str], flag: str, default: str) -> str:
    """An option's value in ``argv`` before parsing (``--config``, whose models ``--help`` lists)."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def _models_in(path: str, source: str | None = None) -> str:
    """The model names of a config file, for help text (a file that does not read: a hint instead)."""
    try:
        import yaml

        models = yaml.safe_load(Path(path).read_text()).get("models") or {}
        names = [m for m, s in models.items() if source is None or (s or {}).get("source") == source]
    except Exception:  # noqa: BLE001 - help text must not fail; the command itself says what is wrong
        return f"a model of the --config file ({path} does not read)"
    return f"one of {', '.join(names)} (the models of {path})" if names else f"a model of {path}"


def _add_config(p, what: str = "the config file") -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE",
                   help=f"{what} (default: {DEFAULT_CONFIG} in the current folder)")


def _add_check_config(sub) -> None:
    c = sub.add_parser("check-config", help="validate config.yaml merged with overlay files, as Snakemake would",
                       description="Validate the configuration a Snakemake run would see: the base file "
                       f"({DEFAULT_CONFIG}) merged with each FILE in order, as snakemake --configfile FILE ... "
                       "merges them (mappings key by key, lists and values replaced).")
    c.add_argument("files", nargs="*", metavar="FILE", help="overlay files, merged in order (a file that is "
                   "the base is not merged twice)")
    c.add_argument("--base", default=DEFAULT_CONFIG, metavar="FILE",
                   help=f"the file the overlays are merged into (default: {DEFAULT_CONFIG}, the Snakefile's "
                   "configfile)")
    c.add_argument("--no-base", action="store_true", help="validate the FILEs alone, merged in order, with no base")
    c.set_defaults(fn=_check_config)


def _add_measure(sub, argv: list[str]) -> None:
    from llm_energy.pipeline.cells import DECODINGS, VARIANT_CHOICES

    m = sub.add_parser("measure", help="measure one cell (all its points, or some) without Snakemake",
                       description="Measure one cell: load the model once and sweep the cell's points as the "
                       "pipeline's measure_cell job does, then print the file written and the energy metered.",
                       epilog="The cells of a config and their points: python -m llm_energy cells --points")
    _add_config(m)
    m.add_argument("--hardware", default=None, metavar="SLUG", help="hardware slug of the cell (default: this "
                   "machine's, as python -m llm_energy detect prints it)")
    m.add_argument("--model", required=True, metavar="NAME", help=_models_in(_option_of(argv, "--config",
                                                                                          DEFAULT_CONFIG)))
    m.add_argument("--variant", required=True, metavar="NAME", help=f"framework variant: {VARIANT_CHOICES}")
    m.add_argument("--decoding", default="greedy", metavar="NAME",
                   help=f"decoding strategy, one of {', '.join(DECODINGS)} (default: greedy)")
    m.add_argument("--points", metavar="IxOxB,...", help="measure only these points of the cell, each "
                   "INPUTxOUTPUTxBATCH (input tokens x output tokens x batch size), e.g. 64x8x1,128x8x4; each "
                   "must be a point of the cell (a shape the cell measures plainly and padded: both); needs --out")
    m.add_argument("--model-dir", metavar="DIR", help="model folder (default: models_dir/<model> or the model's path)")
    m.add_argument("--draft-dir", metavar="DIR", help="draft model folder for --decoding speculative "
                   "(default: the config's)")
    m.add_argument("--out", metavar="FILE", help="measurement file (default: the pipeline's "
                   "results/measurements/<hardware>/<model>/<variant>/<decoding>.parquet)")
    m.add_argument("--overwrite", action="store_true", help="replace --out where it exists (default: refuse)")
    wait = m.add_mutually_exclusive_group()
    wait.add_argument("--no-wait", action="store_true", help="fail at once when another measurement holds "
                      "the device (default: wait for it, with a line every minute)")
    wait.add_argument("--lock-timeout", type=float, metavar="SECONDS", help="fail when the device is still "
                      "held after this long (pipeline jobs: set LLM_ENERGY_LOCK_TIMEOUT=SECONDS)")
    m.set_defaults(fn=_measure)


def _add_listing(sub) -> None:
    sub.add_parser("detect", help="print this machine's hardware slug").set_defaults(fn=_detect)
    c = sub.add_parser("cells", help="list the cells of a config: hardware, model, variant, decoding, points")
    _add_config(c)
    c.add_argument("--hardware", metavar="SLUG", help="hardware slug (default: the config's hardware, or this "
                   "machine's)")
    c.add_argument("--points", action="store_true", help="also list each cell's points as INPUTxOUTPUTxBATCH(role)")
    c.set_defaults(fn=_cells)


def _add_tools(sub, argv: list[str]) -> None:
    b = sub.add_parser("build-model", help="build a random-weight model from the config")
    b.add_argument("model", metavar="MODEL", help=_models_in(_option_of(argv, "--config", DEFAULT_CONFIG), "build"))
    _add_config(b)
    b.add_argument("--out", metavar="DIR", help="model folder (default: models_dir/<model>)")
    b.set_defaults(fn=_build_model)
    pr = sub.add_parser("profile", help="statistics of one trace workload from the config")
    pr.add_argument("workload", metavar="WORKLOAD", help="a workload of kind 'trace' in the config")
    _add_config(pr)
    pr.set_defaults(fn=_profile)
    f = sub.add_parser("flops", help="FLOPs of a generation from a model's config.json")
    f.add_argument("--model-config", required=True, metavar="FILE", help="a model's config.json")
    f.add_argument("--input-len", type=int, required=True, metavar="N", help="prompt tokens per request")
    f.add_argument("--output-len", type=int, required=True, metavar="N", help="generated tokens per request")
    f.add_argument("--batch", type=int, default=1, metavar="N", help="requests in the batch (default: 1)")
    f.add_argument("--causal-half", action="store_true", help="count only the causal half of prefill attention")
    f.set_defaults(fn=_flops)
    k = sub.add_parser("lock-state", help="exit 0 if a killed Snakemake run left its lock here (see scripts/run.sh)")
    k.add_argument("workdir", nargs="?", default=".", help="the Snakemake working folder (default: .)")
    k.set_defaults(fn=_lock_state)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help text wrapped between words only: names such as ``transformers-compile`` stay whole."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The command line's parser; ``argv`` only to list the models of its ``--config`` in ``--help``."""
    p = argparse.ArgumentParser(prog="python -m llm_energy", description=__doc__.strip(), epilog=EPILOG,
                                formatter_class=_Formatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="SUBCOMMAND", title="subcommands")
    _add_listing(sub)
    _add_check_config(sub)
    _add_measure(sub, argv)
    _add_tools(sub, argv)
    for parser in sub.choices.values():
        parser.formatter_class = _Formatter
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; user mistakes print one line and return 1."""
    from llm_energy.pipeline.rulekit import setup_logging

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    setup_logging()
    try:
        if getattr(args, "hardware", "x") is None and args.cmd == "measure":
            from llm_energy.pipeline.hardware import detect

            args.hardware = detect()
        args.fn(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
