"""What the workflow settles before any job (llm_energy.pipeline.plan): each check on its own."""

import os
from pathlib import Path

import pytest

from llm_energy import UserError
from llm_energy.pipeline.plan import absent_raw, is_dry_run, package_code, refuse_other_hardware_targets


@pytest.mark.parametrize("argv, dry", [(["-n"], True), (["--cores", "2", "-np"], True), (["--dry-run"], True),
                                       (["--cores", "all"], False), (["--notemp"], False), (["-F"], False),
                                       (["--list-conda-envs"], True), (["--summary"], True)])
def test_dry_run_is_read_off_the_command_line(argv, dry):
    assert is_dry_run(argv) is dry


def _cfg(data_dir: Path) -> dict:
    return {"data_dir": str(data_dir), "measurement": {"prompt_file": "book.json"},
            "workloads": {"t": {"file": "t.csv", "archive_root": None},
                          "imdb": {"file": "aclImdb", "archive_root": "aclImdb"}}}


def test_only_absent_raw_files_may_be_made_by_a_rule(tmp_path):
    (tmp_path / "t.csv").write_text("i,o\n1,2\n")  # placed by hand: a source file, no rule
    assert absent_raw(_cfg(tmp_path), archives=False) == ["book.json"]
    assert absent_raw(_cfg(tmp_path), archives=True) == ["aclImdb"]
    (tmp_path / "aclImdb").mkdir()
    assert absent_raw(_cfg(tmp_path), archives=True) == []


def test_a_link_to_nothing_is_one_line(tmp_path):
    (tmp_path / "t.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(UserError, match=r"t\.csv is a link to .*gone\.csv, which does not exist"):
        absent_raw(_cfg(tmp_path), archives=False)


def test_package_code_is_relative_and_a_folder_means_its_modules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (estimate,) = package_code("estimates.estimate")
    assert not os.path.isabs(estimate) and Path(estimate).resolve().name == "estimate.py"
    figures = package_code("paper.figures")
    assert len(figures) > 3 and all(Path(f).resolve().parent.name == "figures" for f in figures)


def test_targets_of_another_hardware_are_answered_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    here = "results/measurements/cpu-x/m/transformers-eager/greedy.parquet"
    refuse_other_hardware_targets(["--cores", "2", here], "cpu-x")  # this machine's: fine
    with pytest.raises(UserError, match="but the cell is for 'a100-sxm4-80gb'"):
        refuse_other_hardware_targets(["results/measurements/a100-sxm4-80gb/m/vllm-eager/greedy.parquet"], "cpu-x")
    copied = tmp_path / "results/replay/h100-x/m/vllm-eager/greedy.parquet"
    copied.parent.mkdir(parents=True)
    copied.write_bytes(b"x")
    with pytest.raises(UserError, match="copied in from a h100-x machine and is kept as it is"):
        refuse_other_hardware_targets(["results/replay/h100-x/m/vllm-eager/greedy.parquet"], "cpu-x")
