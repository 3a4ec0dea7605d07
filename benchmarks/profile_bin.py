"""Benchmark: profile and bin one million synthetic requests (goal: at most 10 s on 2 cores).

Writes a seeded Azure-shaped CSV (timestamp, input, output) to a temporary folder, then times
reading it as a trace, the statistics and the binning. Prints figures; no pass/fail.
Run: .venv/bin/python benchmarks/profile_bin.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from llm_energy.workloads.binning import bin_requests  # noqa: E402
from llm_energy.workloads.profile import load_trace, stats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.csv"
        pd.DataFrame({
            "TIMESTAMP": pd.date_range("2024-05-10", periods=args.rows, freq="10ms").astype(str),
            "ContextTokens": rng.lognormal(7, 1, args.rows).astype(int) + 1,
            "GeneratedTokens": rng.lognormal(3.5, 1.2, args.rows).astype(int) + 1,
        }).to_csv(path, index=False)
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        df, info = load_trace(path, {"input_column": "ContextTokens", "output_column": "GeneratedTokens"})
        t1 = time.perf_counter()
        s = stats(df, info)
        t2 = time.perf_counter()
        table, summary = bin_requests(df, [2 ** m for m in range(4, 14)], [2 ** m for m in range(3, 10)])
        t3 = time.perf_counter()
    print(f"{args.rows:,} requests ({size_mb:.0f} MB CSV): read {t1 - t0:.2f} s, stats {t2 - t1:.2f} s, "
          f"bin {t3 - t2:.2f} s, total {t3 - t0:.2f} s (goal <= 10 s); {len(table)} bins, "
          f"{summary['n_excluded']:,} excluded, input mean {s['input_tokens']['mean']:.1f}")


if __name__ == "__main__":
    main()
