"""Benchmark: what measuring costs. Prints figures; no pass/fail.

1. Power sampler: throughput of a CPU-bound generation loop with and without the background
   sampler thread at 10 Hz (goal: at most 1 % slower).
2. Harness overhead of a cell: wall time - model load - metered windows - protocol work
   (warm-up, probing, idle window, pauses), as a share of wall time (goal: at most 5 %).

Run: .venv/bin/python benchmarks/meter_overhead.py [--model models/tiny-llama]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from llm_energy.measurement.backends import make_backend  # noqa: E402
from llm_energy.measurement.loop import run_cell, synthetic_prompts
from llm_energy.measurement.meters import PowerSampler  # noqa: E402
from llm_energy.measurement.protocol import Point, Protocol  # noqa: E402


def _reader():
    """A power read as costly as a syscall-backed counter (NVML's is a driver ioctl)."""
    with open("/proc/stat") as f:
        f.readline()
    return 1.0


def sampler_cost(backend, rounds: int = 21) -> dict:
    point = Point(128, 32, 4)
    prompts = synthetic_prompts(point, 0, 0)
    backend.run(prompts, point.output_len)
    plain, sampled = [], []
    def without():
        t = time.perf_counter()
        backend.run(prompts, point.output_len)
        plain.append(time.perf_counter() - t)

    def with_sampler():
        s = PowerSampler(_reader, 0.1)
        t = time.perf_counter()
        s.start(t)
        backend.run(prompts, point.output_len)
        sampled.append(time.perf_counter() - t)
        s.stop()

    for k in range(rounds):  # alternate the order so that drifts cancel
        for f in ((without, with_sampler) if k % 2 else (with_sampler, without)):
            f()
    a, b = statistics.median(plain), statistics.median(sampled)
    return {"median_s_without": a, "median_s_with": b, "slowdown_pct": 100 * (b - a) / a}


def harness_overhead(model: str) -> dict:
    backend = make_backend("transformers-eager", model, dtype="bfloat16")
    points = [Point(i, o, b) for i in (64, 256) for o in (8, 32) for b in (1, 4)]
    df, _ = run_cell(backend, points, Protocol.of(meter="cpu-estimate", warmup_batches=1, repeats=2, idle_s=1.0,
                                               min_window_s=0.3, pause_s=0, examples_per_point=0,
                                               examples_per_point_large_batch=0))
    wall, load = df["cell_wall_s"].iloc[0], df["model_load_s"].iloc[0]
    measured, protocol = df["cell_measured_s"].iloc[0], df["cell_protocol_s"].iloc[0]
    other = wall - load - measured - protocol
    return {"wall_s": wall, "load_s": load, "measured_s": measured, "protocol_s": protocol,
            "harness_s": other, "harness_pct_of_wall": 100 * other / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tiny-llama")
    args = ap.parse_args()
    backend = make_backend("transformers-eager", args.model, dtype="bfloat16")
    backend.load()
    s = sampler_cost(backend)
    print(f"power sampler at 10 Hz: {s['median_s_without'] * 1e3:.1f} ms -> {s['median_s_with'] * 1e3:.1f} ms "
          f"per batch, {s['slowdown_pct']:+.2f} % (goal <= 1 %)")
    h = harness_overhead(args.model)
    print(f"cell: wall {h['wall_s']:.1f} s = load {h['load_s']:.1f} + metered {h['measured_s']:.1f} + protocol "
          f"{h['protocol_s']:.1f} + harness {h['harness_s']:.2f} s -> harness {h['harness_pct_of_wall']:.2f} % "
          "of wall (goal <= 5 %)")


if __name__ == "__main__":
    main()
