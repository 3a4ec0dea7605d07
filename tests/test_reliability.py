"""The reliability suite: every case of tests/reliability.py on a copy of one finished small run.

Each case must end with the expected line, no traceback on the terminal or in any log, and no file
lost (a placed raw file or a merged measurement changed or gone, or an earlier result gone).
``benchmarks/reliability.py`` prints the same cases as a table.
"""

import pytest

import reliability

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared):
    return reliability.finished_run(tmp_path_factory.mktemp("reliability") / "base")


@pytest.mark.parametrize("case", reliability.CASES, ids=[c.name for c in reliability.CASES])
def test_case(case, finished, tmp_path):
    r = reliability.try_case(case, finished, tmp_path)
    assert not r.traceback, f"{case.name}: a traceback was shown\n{r.line}"
    assert r.lost == [], f"{case.name}: files lost: {r.lost}"
    assert case.expect in r.line, f"{case.name}: saw {r.line!r}"
    assert (r.rc == 0) == case.ok, f"{case.name}: exit status {r.rc}"
    assert not r.wrong, f"{case.name}: {r.wrong}"
