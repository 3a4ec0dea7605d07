"""Benchmark: how much of a CPU-time energy estimate is OpenMP threads spin-waiting. Prints figures; no pass/fail.

With the CPU meter (`cpu-estimate`), energy = CPU seconds x watts per core. torch's OpenMP threads
spin while they wait at a barrier, and a spinning thread is counted as busy. This runs the same
transformers batch (the pipeline's embedded model, `models/tiny-llama` once a default run has
built it; 8 x 256 -> 32 tokens, greedy) in a fresh process per policy, `OMP_WAIT_POLICY` unset
(libgomp's default: spin, then sleep) and `PASSIVE` (sleep at once), alternating A/B/A/B so that
the machine's drift falls on both alike, and prints per process: mean CPU seconds and wall seconds
per batch, their batch-to-batch CV, and CPU / wall.

Run: .venv/bin/python benchmarks/omp_wait_policy.py [--model models/tiny-llama] [--threads 2] [--rounds 25] [--pairs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(sys.argv[3]).eval()
torch.set_num_threads(int(sys.argv[1]))
ids = torch.randint(0, model.config.vocab_size, (8, 256))
def run():
    with torch.inference_mode():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, min_new_tokens=32,
                       do_sample=False, pad_token_id=0)
for _ in range(3):
    run()
cpu, wall = [], []
for _ in range(int(sys.argv[2])):
    c, w = time.process_time(), time.perf_counter()
    run()
    cpu.append(time.process_time() - c)
    wall.append(time.perf_counter() - w)
print(json.dumps({"cpu": cpu, "wall": wall}))
"""


def _cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) * 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/tiny-llama"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    if not (args.model / "config.json").is_file():
        sys.exit(f"{args.model}: no model folder; run the default pipeline first (bash scripts/run.sh), "
                 "or pass --model a transformers model folder")
    print(f"{'OMP_WAIT_POLICY':>16} {'CPU s/batch':>12} {'CV %':>6} {'wall s/batch':>13} {'CV %':>6} {'CPU/wall':>9}")
    for _ in range(args.pairs):
        for policy in ("", "PASSIVE"):
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), str(args.rounds),
                                  str(args.model)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            cpu, wall = statistics.mean(r["cpu"]), statistics.mean(r["wall"])
            print(f"{policy or '(unset)':>16} {cpu:12.3f} {_cv(r['cpu']):6.1f} {wall:13.3f} {_cv(r['wall']):6.1f} "
                  f"{cpu / wall:9.2f}")


if __name__ == "__main__":
    main()
