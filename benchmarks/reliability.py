"""Print the reliability table: each case a user might try, the line they saw, traceback, files lost.

    .venv/bin/python benchmarks/reliability.py [case-name-substring ...]

Runs the small pipeline once in a temporary folder (about 1 min on 2 cores), then every case of
``tests/reliability.py`` in a copy of it. ``tests/test_reliability.py`` asserts the same cases.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import reliability  # noqa: E402


def main(filters: list[str]) -> int:
    cases = [c for c in reliability.CASES if not filters or any(f in c.name for f in filters)]
    with tempfile.TemporaryDirectory(prefix="llm-energy-reliability-") as tmp:
        base = reliability.finished_run(Path(tmp) / "base")
        results = reliability.try_all(base, Path(tmp), cases)
    print(reliability.table(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
