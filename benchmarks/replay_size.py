"""How the energy model's error against a metered replay moves with the replay's size.

    .venv/bin/python benchmarks/replay_size.py RUN_DIR --cell HARDWARE/MODEL/VARIANT/DECODING \\
        [--sizes 24 64 128] [--runs 2] [--workloads burstgpt wmt14 ...]

For each size n and workload of a finished run (its config, profiles, models and the cell's checked
measurements), draw the replay's seeded sample of n requests, serve it for real ``--runs`` times with
the cell's stack (one engine for every size, loaded once), and print the replay's energy, its spread
(``replay_cv``) and the binned and model estimates' errors, as ``validate_cell`` computes them. A small
sample's error is mostly which requests it drew; the question is the size past which the error
settles. Meters the machine: run it with nothing else running, with ``--threads`` the cores the run's
metered jobs had (a CPU batch's estimate depends on its threads).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--cell", required=True, help="hardware/model/variant/decoding, e.g. cpu-x/tiny-llama/vllm-eager/"
                                                  "greedy")
    ap.add_argument("--sizes", type=int, nargs="+", default=[24, 64, 128])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workloads", nargs="*", help="default: every workload of the run's config")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch threads: the cores the run's metered jobs had (`snakemake --cores N` gives them N; "
                         "the CPU estimate of a batch depends on it)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    from llm_energy.estimates.estimate import grid_batch_size
    from llm_energy.estimates.replay import replay, replay_rows, sample_requests, validate
    from llm_energy.measurement.cell import cell_job
    from llm_energy.modelling.energy_model import context_length
    from llm_energy.pipeline import config as config_mod

    torch.set_num_threads(args.threads)
    os.chdir(args.run)
    cfg = config_mod.load("config.yaml")
    hardware, model, variant, decoding = args.cell.split("/")
    checked = pd.read_parquet(Path("results/checked", hardware, model, variant, f"{decoding}.parquet"))
    edges_in, edges_out, seed = cfg["bins"]["input"], cfg["bins"]["output"], cfg["replay"]["seed"]
    batch = grid_batch_size(checked)
    cell = config_mod.cell_of(cfg, hardware, model, variant, decoding)
    job = cell_job(cfg, cell, longest=edges_in[-1] + edges_out[-1], batch_size=batch)
    model_dir = Path(job.backend.model_dir)
    labels = {"hardware": hardware, "model": model, "variant": variant, "decoding": decoding}
    rows = []
    with job:
        backend, meter = job.backend, job.meter
        print(f"engine in this process: {backend.describe().get('engine_in_process')}", flush=True)
        for workload in args.workloads or list(cfg["workloads"]):
            profile = pd.read_parquet(Path("results/profile", f"{workload}.parquet"))
            for n in args.sizes:
                sample = sample_requests(profile, n, seed, edges_in[-1], edges_out[-1])
                metered = replay(backend, meter, sample, batch, seed, runs=args.runs)
                table = pd.DataFrame(replay_rows(workload, sample, metered, labels, seed))
                v = validate(table, checked, edges_in, edges_out, context_length(model_dir / "config.json"),
                             name=args.cell).iloc[0]
                rows.append({"workload": workload, "n_requests": int(v["n_requests"]),
                             "replay_energy_j": v["replay_energy_j"], "replay_cv": v["replay_cv"],
                             "binned_error_pct": v["error_pct"], "model_error_pct": v["model_error_pct"]})
                print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 1), flush=True)
    out = pd.DataFrame(rows)
    print("\nmodel error by replay size (|error| median and max over workloads)")
    print(out.assign(abs_err=out["model_error_pct"].abs()).groupby("n_requests")["abs_err"]
          .agg(["median", "max"]).round(1).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
