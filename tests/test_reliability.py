"""The reliability suite: every case of tests/reliability.py on a copy of one finished small run.

Each case must end with the expected line, no traceback on the terminal or in any log, and no file
lost (a placed raw file or a merged measurement changed or gone, or an earlier result gone).
``benchmarks/reliability.py`` prints the same cases as a table.
"""

import re
import shutil

import pytest
import reliability

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(merged_run):
    return merged_run.path


@pytest.mark.parametrize("case", reliability.CASES, ids=[c.name for c in reliability.CASES])
def test_case(case, finished, tmp_path):
    r = reliability.try_case(case, finished, tmp_path)
    assert not r.traceback, f"{case.name}: a traceback was shown\n{r.line}"
    assert r.lost == [], f"{case.name}: files lost: {r.lost}"
    assert case.expect in r.line, f"{case.name}: saw {r.line!r}"
    assert (r.rc == 0) == case.ok, f"{case.name}: exit status {r.rc}"
    assert not r.wrong, f"{case.name}: {r.wrong}"


EXPENSIVE = {"measure_cell", "replay_cell", "build_model", "profile_workload"}


@pytest.mark.parametrize("module, replanned", [
    ("scripts/llm_energy/estimates/estimate.py", {"estimate", "manifest"}),
    ("scripts/llm_energy/measurement/validation.py", {"check_cell", "estimate"}),
    ("scripts/llm_energy/paper/figures/batch.py", set()),
])
def test_editing_a_package_module_replans_what_it_makes_and_never_a_measurement(finished, tmp_path, module,
                                                                                 replanned):
    d = tmp_path / "checkout"
    shutil.copytree(finished, d, symlinks=True)
    assert reliability.snakemake(d, "-n").text.count("Nothing to be done") == 1
    (d / module).write_text((d / module).read_text() + "\n# a user's edit\n")
    out = reliability.snakemake(d, "-n")
    assert out.rc == 0, out.text[-3000:]
    planned = set(re.findall(r"^rule (\w+):", out.text, re.MULTILINE))
    assert replanned <= planned, planned
    assert any(rule.startswith("figure") for rule in planned), planned  # figures come from what changed
    assert not planned & EXPENSIVE, planned
