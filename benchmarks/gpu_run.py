"""The GPU run of a lent GPU machine: what this CPU-only project can only check on real hardware.

Parts, in order of value, each written to ``--out`` as soon as it is done (CSV), skipped when the time
budget is spent:
  A  NVML counter vs integrated 10 Hz power timeline (goal: within 10 %) on a random-weight model of
     Llama-3.2-1B's shape, transformers eager, four points (benchmarks/gpu_check.py's check).
  B  Framework variants and decoding strategies through the pipeline's measurement loop:
     transformers-eager x {greedy, beam, temperature, top-p, speculative}, at the fixed shape, batch 1
     and 16 (compile: part D).
  C  Dense vs MoE at the paper's widths, reduced depth: OLMo-1B vs OLMoE-1B-7B (4 layers each).
  D  transformers-compile x greedy (last: compiling per shape takes the longest).
  G  The energy model against a metered replay (#31), through the pipeline's own functions (the
     default config with this GPU's meter): the transformers-eager grid (bins, sweeps, padded points)
     of a random-weight model of Llama-3.2-1B's shape, checked, fitted, and 64 requests of each of
     three traces replayed with control points; prints each trace's model error (raw, and with the
     meter's changes taken out) and the model's leave-one-point-out error (``--parts G --profiles
     DIR``: a finished run's results/profile folder, with azure_code_2023, azure_conv_2023 and
     burstgpt).
  F  The full protocol (5 s windows, 3 repeats, the default config's validation limits): greedy on
     random-weight models of Llama-3.2-1B's shape (eager at batch 1-256, compile at 1/16/256) and of
     Llama-3.1-8B's (eager at 1/16/256); prints each point's coefficient of variation, the
     counter-vs-timeline gap and whether every row passes validation (``--parts F``).

Needs torch, transformers, nvidia-ml-py, pandas and this package from the working tree (no vLLM, no
Snakemake, no mistral_common: the tokenizer is copied from ``--tokenizer-dir``; part G also reads the
config: pyyaml, jsonschema and pyarrow):
    PYTHONPATH=scripts python benchmarks/gpu_run.py --tokenizer-dir models/tiny-llama --out DIR
``--meter cpu-estimate --small`` runs the same path on a CPU in a minute (part G: two minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import pandas as pd  # noqa: E402

from llm_energy.measurement.backends import make_backend  # noqa: E402
from llm_energy.measurement.loop import run_cell
from llm_energy.measurement.protocol import Point, Protocol  # noqa: E402
from llm_energy.models.build import build_model, model_facts  # noqa: E402
from llm_energy.pipeline.architectures import read_architecture_file  # noqa: E402
from llm_energy.pipeline.hardware import detect, nvml_gpus  # noqa: E402

DRAFT = {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_key_value_heads": 2, "vocab_size": 128256, "max_position_embeddings": 4096}
SMALL = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 4096}

SHOW = ["model", "variant", "decoding", "input_len", "output_len", "batch_size", "repeat", "status", "energy_j",
        "timeline_energy_j", "prefill_energy_j", "decode_energy_j", "duration_s", "throughput_tok_s", "avg_power_w",
        "n_batches_in_window", "n_power_samples"]


def summary(df: pd.DataFrame) -> str:
    if "status" not in df:  # part G's validation table, printed by the part itself
        return f"{len(df)} validation rows"
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return df[[c for c in SHOW if c in df]].to_string(index=False)
    g = ok.groupby(["model", "variant", "decoding", "input_len", "output_len", "batch_size"])
    out = g.agg(energy_j=("energy_j", "mean"), energy_std_j=("energy_j", "std"), duration_s=("duration_s", "mean"),
                throughput_tok_s=("throughput_tok_s", "mean"), avg_power_w=("avg_power_w", "mean"),
                prefill_j=("prefill_energy_j", "mean"), decode_j=("decode_energy_j", "mean")).reset_index()
    text = out.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    other = df[df["status"] != "ok"]
    if not other.empty:
        text += "\n" + other[["model", "variant", "decoding", "batch_size", "status"]].to_string(index=False)
    return text


TRACES = ("azure_code_2023", "azure_conv_2023", "burstgpt")


def replay_check(args, hw: str, target: Path, arch: dict, out: Path) -> pd.DataFrame:
    """Part G: measure, check, replay and validate one transformers-eager grid cell of ``target``
    (built from ``arch``) as the pipeline's rules do, in one process (no Snakemake); the validation
    table of the three traces."""
    from llm_energy.estimates.replay import replay_cell, validate
    from llm_energy.measurement.cell import measure_cell
    from llm_energy.measurement.validation import check_measurements, gate_options
    from llm_energy.modelling.energy_model import context_length
    from llm_energy.pipeline import config as config_mod

    profiles = {w: args.profiles / f"{w}.parquet" for w in TRACES}
    missing = [str(p) for p in profiles.values() if not p.exists()]
    if missing:
        raise SystemExit(f"part G needs the traces' profiles: {', '.join(missing)} (run the default pipeline's "
                         "profile_workload rule, or pass --profiles DIR)")
    name, variant = "llama-3.2-1b-shape", "transformers-eager"
    overlay = {"hardware": hw, "models": {name: {"source": "build", "dtype": "bfloat16", "architecture": arch}},
               "measurement": {"meter": args.meter, "min_window_s": args.min_window_s,
                               "batch_size": 4 if args.small else args.batch_size,
                               "prompts": "pg19" if args.book else "random"},
               "replay": {"enabled": True, "workloads": list(TRACES), "n_requests": 8 if args.small else 64,
                          "runs": 2, "control_points": 2},
               "cells": [{"model": name, "variants": [variant], "decoding": ["greedy"]}]}
    cfg = config_mod.validate(config_mod.merge(config_mod.read_mapping(Path(__file__).parents[1] / "config.yaml"),
                                               overlay))
    cell = dict(hardware=hw, model=name, variant=variant, decoding="greedy")
    df = measure_cell(cfg, **cell, model_dir=target, out=out / "part_G.measurements.parquet", prompt_file=args.book)
    v, m = cfg["validation"], cfg["measurement"]  # as workflow/common.smk's VALIDATION gives the rule
    checked = check_measurements(df, min_window_s=v["min_window_s"] or m["min_window_s"], max_cv=v["max_cv"],
                                 min_power_coverage=v["min_power_coverage"],
                                 sample_interval_s=m["power_sample_interval_s"], **gate_options(v))
    checked_path = out / "part_G.checked.parquet"
    checked.to_parquet(checked_path, index=False)
    print(f"grid: {int(checked['valid'].sum())} of {len(checked)} rows valid", flush=True)
    replays = replay_cell(cfg, **cell, model_dir=target, profiles=profiles, measurements=checked_path,
                          out=out / "part_G.replay.parquet")
    table = validate(replays, checked, cfg["bins"]["input"], cfg["bins"]["output"],
                     context_len=context_length(Path(target) / "config.json"), name=name)
    cols = ["workload", "n_requests", "replay_energy_j", "error_pct", "model_error_pct", "model_interval_pct",
            "model_error_steady_pct", "meter_drift_pct", "loo_median_error_pct", "loo_grid_pct", "loo_padded_pct"]
    print(table[[c for c in cols if c in table]].to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    worst = table["model_error_pct"].abs().max()
    print(f"model error <= 10 % on every replayed trace (raw, {table['energy_source'].iloc[0]}): "
          f"{'met' if worst <= 10 else 'NOT met'} (largest {worst:.1f} %)", flush=True)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meter", default="nvml", choices=["nvml", "cpu-estimate"])
    ap.add_argument("--tokenizer-dir", default=None)
    ap.add_argument("--out", default="gpu-run")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip parts that would start after this")
    ap.add_argument("--small", action="store_true", help="tiny shapes (the CPU path)")
    ap.add_argument("--min-window-s", type=float, default=3.0)
    ap.add_argument("--window-a-s", type=float, default=None, help="part A's windows (default: --min-window-s)")
    ap.add_argument("--parts", default="A,B,C,D", help="which parts, in order (A is always first when named)")
    ap.add_argument("--profiles", type=Path, default=Path("results/profile"), help="part G's trace profiles")
    ap.add_argument("--batch-size", type=int, default=16, help="part G's grid batch size (--small: 4)")
    ap.add_argument("--book", type=Path, default=None, help="part G: cut the grid's prompts from this PG-19 book "
                    "(the default config's; without it seeded random token ids, as the replay's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.meter == "nvml" and not nvml_gpus():
        print("no NVIDIA GPU visible (use --meter cpu-estimate --small for the CPU path)")
        return 2
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hw = detect()
    dtype = "bfloat16"
    protocol = Protocol.of(meter=args.meter, warmup_batches=2, repeats=2, pause_s=0.5, idle_s=3.0,
                        min_window_s=args.min_window_s, examples_per_point=0, examples_per_point_large_batch=0)
    tmp = Path(tempfile.mkdtemp(prefix="gpu-run-"))
    build = dict(seed=0, dtype=dtype, tokenizer_dir=args.tokenizer_dir)
    # 8,704 positions: part G's bins reach 4,096 + 512 tokens (the default config's tiny-llama has as many).
    target_arch = {**(SMALL if args.small else read_architecture_file("llama-3.2-1b")), "max_position_embeddings": 8704}
    target = build_model(tmp / "llama-3.2-1b-shape", target_arch, **build)
    print(f"[{time.perf_counter() - t0:.0f} s] built target {model_facts(target)}", flush=True)
    results = {}

    wanted = set(args.parts.split(","))

    def part(name, fn):
        if name not in wanted:
            return
        if name != "A" and time.perf_counter() - t0 > args.budget_s:
            print(f"== part {name}: skipped, budget spent", flush=True)
            return
        print(f"== part {name} (at {time.perf_counter() - t0:.0f} s)", flush=True)
        try:
            df = fn()
        except Exception as exc:  # noqa: BLE001 - report and go on to the next part
            import traceback

            traceback.print_exc()
            print(f"== part {name} failed: {exc}", flush=True)
            return
        df.to_csv(out / f"part_{name}.csv", index=False)
        results[name] = df
        print(summary(df), flush=True)

    def part_a():
        points = [Point(512, 64, 1), Point(512, 64, 16), Point(2048, 8, 8), Point(128, 256, 32)]
        if args.small:
            points = [Point(32, 8, 1), Point(32, 8, 4)]
        window = args.window_a_s or args.min_window_s
        df, power = run_cell(make_backend("transformers-eager", str(target), dtype=dtype), points,
                             dataclasses.replace(protocol, min_window_s=window),
                             labels={"hardware": hw, "model": "llama-3.2-1b-shape", "variant": "transformers-eager",
                                     "decoding": "greedy", "weights": "random"})
        power.to_csv(out / "part_A.power.csv", index=False)
        rel = (df["timeline_energy_j"] / df["energy_j"] - 1).abs()
        print(f"timeline vs counter: worst {100 * rel.max():.2f} %, mean {100 * rel.mean():.2f} % (goal <= 10 %); "
              f"source {df['energy_source'].iloc[0]}; idle {df['idle_power_w'].iloc[0]:.1f} W", flush=True)
        return df

    def part_b(compiled=False):
        draft = tmp / "draft"
        if not draft.exists():
            build_model(draft, SMALL if args.small else DRAFT, **build)
        shape = (32, 8) if args.small else (256, 64)
        points = [Point(*shape, b, "sweep") for b in ((1, 4) if args.small else (1, 16))]
        frames = []
        cells = [("transformers-compile", "greedy")] if compiled else [
            ("transformers-eager", "greedy"), ("transformers-eager", "beam"), ("transformers-eager", "temperature"),
            ("transformers-eager", "top-p"), ("transformers-eager", "speculative")]
        for variant, decoding in cells:
            backend = make_backend(variant, str(target), dtype=dtype, decoding=decoding, draft_dir=str(draft))
            df, _ = run_cell(backend, points, protocol,
                             labels={"hardware": hw, "model": "llama-3.2-1b-shape", "variant": variant,
                                     "decoding": decoding, "weights": "random"})
            frames.append(df)
            pd.concat(frames, ignore_index=True).to_csv(out / f"part_{'D' if compiled else 'B'}.partial.csv",
                                                        index=False)
        return pd.concat(frames, ignore_index=True)

    def part_c():
        frames = []
        shape = (32, 8) if args.small else (256, 64)
        points = [Point(*shape, b, "sweep") for b in ((1, 4) if args.small else (1, 8, 32))]
        for name in ("olmo-1b", "olmoe-1b-7b"):
            arch = {**read_architecture_file(name), "num_hidden_layers": 4}
            if args.small:
                arch.update(hidden_size=256, intermediate_size=128 if "moe" in name else 512, num_attention_heads=4,
                            num_key_value_heads=4, vocab_size=32000)
                if "moe" in name:
                    arch.update(num_experts=8, num_experts_per_tok=4)
            model = build_model(tmp / name, arch, **build)
            df, _ = run_cell(make_backend("transformers-eager", str(model), dtype=dtype), points, protocol,
                             labels={"hardware": hw, "model": f"{name}-4layers", "variant": "transformers-eager",
                                     "decoding": "greedy", "weights": "random", **model_facts(model)})
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def part_f():
        from llm_energy.measurement.validation import check_measurements
        from llm_energy.pipeline.config import load_schema

        full = Protocol.of(meter=args.meter, warmup_batches=5, repeats=3, pause_s=1.0, idle_s=5.0,
                        min_window_s=1.0 if args.small else 5.0, examples_per_point=0, examples_per_point_large_batch=0)
        shape = (32, 8) if args.small else (512, 64)
        runs = [("llama-3.2-1b", "transformers-eager", (1, 4) if args.small else (1, 4, 16, 64, 256)),
                ("llama-3.2-1b", "transformers-compile", (1, 4) if args.small else (1, 16, 256)),
                ("llama-3.1-8b", "transformers-eager", (1,) if args.small else (1, 16, 256))]
        frames = []
        for name, variant, batches in runs:
            model = target if name == "llama-3.2-1b" else build_model(
                tmp / name, SMALL if args.small else {**read_architecture_file(name), "max_position_embeddings": 4096},
                **build)
            points = [Point(*shape, b, "sweep") for b in batches]
            labels = {"hardware": hw, "model": f"{name}-shape", "variant": variant, "decoding": "greedy",
                      "weights": "random"}
            df, _ = run_cell(make_backend(variant, str(model), dtype=dtype), points, full, labels=labels)
            frames.append(df)
            pd.concat(frames, ignore_index=True).to_csv(out / "part_F.partial.csv", index=False)
        df = pd.concat(frames, ignore_index=True)
        limits = {k: v["default"] for k, v in load_schema()["properties"]["validation"]["properties"].items()
                  if k in ("max_cv", "min_power_coverage")}
        checked = check_measurements(df, min_window_s=full.min_window_s, **limits)
        keys = ["model", "variant", "batch_size"]
        ok = checked[checked["status"] == "ok"]
        cv = ok.groupby(keys)["energy_j"].agg(lambda e: e.std() / e.mean()).rename("cv")
        gap = (ok["timeline_energy_j"] / ok["energy_j"] - 1).abs().groupby([ok[k] for k in keys]).max().rename("gap")
        print(pd.concat([cv, gap], axis=1).to_string(float_format=lambda v: f"{v:.3f}"), flush=True)
        bad = checked[~checked["valid"]]
        print(f"validation (limits {limits}): {len(checked) - len(bad)} of {len(checked)} rows valid"
              + "".join(f"\n  {r.model} {r.variant} b={r.batch_size} r={r.repeat}: {r.invalid_reason}"
                        for r in bad.itertuples()), flush=True)
        return checked

    def part_g():
        return replay_check(args, hw, target, target_arch, out)

    part("A", part_a)
    part("B", part_b)
    part("C", part_c)
    part("D", lambda: part_b(compiled=True))
    part("F", part_f)
    part("G", part_g)
    print(f"== done in {time.perf_counter() - t0:.0f} s; parts: {', '.join(results) or 'none'}", flush=True)
    return 0 if results.keys() & {"A", "F", "G"} else 1


if __name__ == "__main__":
    sys.exit(main())
