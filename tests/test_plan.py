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
    with pytest.raises(UserError, match="copied in from a machine detected as h100-x and is kept as it is"):
        refuse_other_hardware_targets(["results/replay/h100-x/m/vllm-eager/greedy.parquet"], "cpu-x")


def _measured(tmp_path, folder_hw: str, rows_hw: str) -> Path:
    import pandas as pd

    path = tmp_path / f"results/measurements/{folder_hw}/m/vllm-eager/greedy.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"input_len": [64], "hardware": [rows_hw], "model": ["m"], "variant": ["vllm-eager"],
                  "decoding": ["greedy"]}).to_parquet(path)
    return path


def test_a_measurement_under_another_hardware_folder_is_refused_before_any_job_with_where_it_belongs(
        tmp_path, monkeypatch):
    from llm_energy.pipeline.cells import Cell
    from llm_energy.pipeline.plan import check_cell_folders

    monkeypatch.chdir(tmp_path)
    cell = Cell.of("h100-copied", "m", "vllm-eager", "greedy")
    _measured(tmp_path, "h100-copied", "h100-copied")
    check_cell_folders([cell], "cpu-x")  # rows and folder agree: merged as it is
    _measured(tmp_path, "h100-copied", "a100-sxm4-80gb")
    with pytest.raises(UserError) as err:
        check_cell_folders([cell], "cpu-x")
    msg = str(err.value)
    assert "\n" not in msg and msg == (
        "results/measurements/h100-copied/m/vllm-eager/greedy.parquet: its rows are of hardware 'a100-sxm4-80gb', "
        "but its folder says 'h100-copied': move it to results/measurements/a100-sxm4-80gb/m/vllm-eager/"
        "greedy.parquet, where it is merged as a100-sxm4-80gb's cell")
    with pytest.raises(UserError, match="where it is this machine's measurement of that cell"):
        check_cell_folders([cell], "a100-sxm4-80gb")
    _measured(tmp_path, "a100-sxm4-80gb", "a100-sxm4-80gb")  # the right folder already holds one
    with pytest.raises(UserError, match="greedy.parquet exists already: keep one of the two"):
        check_cell_folders([cell], "cpu-x")


def test_an_unreadable_measurement_is_left_to_check_cell(tmp_path, monkeypatch):
    from llm_energy.pipeline.cells import Cell
    from llm_energy.pipeline.plan import check_cell_folders

    monkeypatch.chdir(tmp_path)
    path = _measured(tmp_path, "h100-copied", "h100-copied")
    path.write_bytes(b"not parquet")
    check_cell_folders([Cell.of("h100-copied", "m", "vllm-eager", "greedy")], "cpu-x")  # no error here


def test_messages_name_another_hardware_without_an_article_before_its_slug(tmp_path, monkeypatch):
    import re

    from llm_energy.pipeline import config as cfgmod
    from llm_energy.pipeline import hardware

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hardware, "detect", lambda: "cpu-x")
    msgs = []
    for call in (lambda: hardware.check_hardware("a100-sxm4-80gb"),
                 lambda: cfgmod.check_hardware_choice({"hardware": "h100-80gb-hbm3"}, "cpu-x", lambda s: ["f"])):
        with pytest.raises(UserError) as err:
            call()
        msgs.append(str(err.value))
    assert "measure it on a machine detected as a100-sxm4-80gb" in msgs[0]
    assert "measure it on a machine detected as h100-80gb-hbm3" in msgs[1]
    assert not any(re.search(r"\ban? [ah]100", m) for m in msgs), msgs
