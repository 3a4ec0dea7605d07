"""The parallel suite's scheduling units (tests/conftest.py): a renamed file must not silently split a
shared fixture over workers, nor drop a heavy unit from the front of the queue."""

from pathlib import Path

import conftest

TESTS = Path(__file__).resolve().parent


def test_every_grouped_or_heavy_file_exists():
    files = {p.name for p in TESTS.glob("test_*.py")}
    assert set(conftest.SHARED_GROUPS) <= files, set(conftest.SHARED_GROUPS) - files
    units = {conftest._unit(f"tests/{f}::t") for f in files}
    assert set(conftest.HEAVY_FIRST) <= units, set(conftest.HEAVY_FIRST) - units


def test_files_sharing_a_session_fixture_are_one_unit_and_others_their_own():
    assert conftest._unit("tests/test_merge_rerun.py::a") == conftest._unit("tests/test_reliability.py::b[x::y]")
    assert conftest._unit("tests/test_decoding.py::a") == conftest._unit("tests/test_models_backends.py::b")
    assert conftest._unit("tests/test_decoding.py::a") != conftest._unit("tests/test_reliability.py::a")
    assert conftest._unit("tests/test_binning.py::a") == "test_binning.py"


def test_every_user_of_a_shared_session_fixture_is_in_its_unit():
    """A new test file that takes ``one_cell_run``, ``merged_run`` or ``vllm_backend`` must join that unit, or a second
    worker would build the run or start the engine again."""
    import re

    for fixture in ("one_cell_run", "merged_run", "vllm_backend"):
        users = {p.name for p in TESTS.glob("test_*.py")
                 if re.search(rf"def \w+\([^)]*\b{fixture}\b", p.read_text())}
        assert users and len({conftest._unit(f"tests/{u}::t") for u in users}) == 1, (fixture, users)
