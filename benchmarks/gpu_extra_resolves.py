"""Does the ``gpu`` extra resolve? A dry run of pip's resolver on ``pip install -e ".[gpu]"``.

Installs nothing: ``pip install --dry-run --ignore-installed --report`` resolves the project with
its ``gpu`` extra (vLLM's CUDA build and the torch it pins) against the package index, as on a
fresh GPU machine, and this prints the resolved torch, vLLM and transformers versions, the number
of packages and how long it took. Needs the package index (about a minute); exit status 1 when
pip cannot resolve (its last lines are printed).

Run: .venv/bin/python benchmarks/gpu_extra_resolves.py [--extra gpu] [--python .venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOWN = ("torch", "vllm", "transformers", "xformers", "flashinfer-python", "triton", "numpy", "nvidia-ml-py")


def resolve(extra: str, python: str) -> tuple[list[dict], float]:
    """The packages pip would install for ``-e .[extra]`` into an empty environment, and the seconds taken."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "-e", f".[{extra}]"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        took = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise SystemExit(f"pip could not resolve .[{extra}] ({took:.0f} s):\n{tail}")
        return json.loads(report.read_text())["install"], took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", default="gpu")
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose pip resolves")
    a = ap.parse_args()
    py = subprocess.run([a.python, "-c", "import platform; print(platform.python_version())"],
                        capture_output=True, text=True).stdout.strip()
    pip = subprocess.run([a.python, "-m", "pip", "--version"], capture_output=True, text=True).stdout.split()[:2]
    print(f"resolving -e .[{a.extra}] with {' '.join(pip)} on Python {py} ({sys.platform})")
    installs, took = resolve(a.extra, a.python)
    versions = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in installs}
    for name in SHOWN:
        print(f"  {name:<18} {versions.get(name, '(not in the resolution)')}")
    cuda = sorted(n for n in versions if n.startswith("nvidia-") and n != "nvidia-ml-py")
    print(f"  {len(cuda)} nvidia-* CUDA runtime packages (e.g. {', '.join(cuda[:3])})" if cuda else
          "  no nvidia-* CUDA runtime packages")
    print(f"{len(versions)} packages resolved in {took:.0f} s")


if __name__ == "__main__":
    main()
