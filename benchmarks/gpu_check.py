"""GPU check: on a real NVIDIA GPU, measure a random-weight model with the transformers backend and
compare NVML's energy counter with the integral of the 10 Hz power timeline (goal: within 10 %).

Needs only torch, transformers, nvidia-ml-py, pandas and this package from the working tree (no vLLM,
no Snakemake, no download):  PYTHONPATH=scripts python benchmarks/gpu_check.py [--out DIR]
Without a GPU it says so and exits 2; ``--meter cpu-estimate`` runs the same path on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from llm_energy import UserError  # noqa: E402
from llm_energy.measurement.backends import make_backend  # noqa: E402
from llm_energy.measurement.loop import run_cell
from llm_energy.measurement.protocol import Point, Protocol  # noqa: E402
from llm_energy.models.build import build_model  # noqa: E402
from llm_energy.pipeline.hardware import detect, nvml_gpus  # noqa: E402

# Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads, 8 KV heads), random weights.
ARCH_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "max_position_embeddings": 4096}
ARCH_SMALL = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 4096}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meter", default="nvml", choices=["nvml", "cpu-estimate"])
    ap.add_argument("--out", default=None, help="folder for the measurement and power tables")
    ap.add_argument("--min-window-s", type=float, default=5.0)
    args = ap.parse_args()
    if args.meter == "nvml" and not nvml_gpus():
        print("no NVIDIA GPU visible: nothing to check (use --meter cpu-estimate for the CPU path)")
        return 2
    arch = ARCH_1B if args.meter == "nvml" else ARCH_SMALL
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model", arch, seed=0)
        backend = make_backend("transformers-eager", str(model), dtype="bfloat16")
        points = [Point(512, 64, 1), Point(512, 64, 16), Point(2048, 8, 8), Point(128, 256, 32)]
        try:
            df, power = run_cell(backend, points, Protocol.of(meter=args.meter, warmup_batches=3, repeats=3,
                                                           pause_s=1.0, idle_s=5.0, min_window_s=args.min_window_s,
                                                           examples_per_point=0, examples_per_point_large_batch=0),
                                 labels={"hardware": detect(), "model": "random-1b", "variant": "transformers-eager"})
        except UserError as exc:
            print(f"error: {exc}")
            return 1
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        df.to_parquet(Path(args.out) / "gpu_check.parquet", index=False)
        power.to_parquet(Path(args.out) / "gpu_check.power.parquet", index=False)
    cols = ["input_len", "output_len", "batch_size", "repeat", "energy_j", "timeline_energy_j", "prefill_energy_j",
            "decode_energy_j", "duration_s", "n_batches_in_window", "avg_power_w", "n_power_samples"]
    print(df[[c for c in cols if c in df]].to_string(index=False))
    print(json.dumps({k: df[k].iloc[0] for k in ("energy_source", "device", "gpu_name", "driver", "power_limit_w",
                                                  "idle_power_w", "model_load_s", "cell_wall_s") if k in df},
                     default=str))
    if args.meter != "nvml":
        return 0
    ratio = (df["timeline_energy_j"] / df["energy_j"]).describe()
    worst = float((df["timeline_energy_j"] / df["energy_j"] - 1).abs().max())
    print(f"timeline / counter energy: mean {ratio['mean']:.4f}, min {ratio['min']:.4f}, max {ratio['max']:.4f}; "
          f"worst disagreement {100 * worst:.2f} % (goal <= 10 %)")
    return 0 if worst <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
