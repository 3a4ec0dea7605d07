"""Table-driven: bad configs and bad inputs through the command line. Each exits 1 with one line that
names the offending key or file, and no traceback."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "config.yaml").read_text())
TRACE_HEADER = "ContextTokens,GeneratedTokens\n"


def _cfg(change):
    cfg = copy.deepcopy(BASE)
    change(cfg)
    return cfg


def _set(path, value):
    def change(cfg):
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


CONFIG_CASES = [
    ("unknown top-level key", lambda c: c.update(measurment={}), "'measurment'"),
    ("unknown nested key", _set(["measurement", "repeat"], 3), "'repeat' in measurement"),
    ("batch of 0", _set(["measurement", "batch_size"], 0), "measurement.batch_size"),
    ("wrong type", _set(["measurement", "repeats"], "three"), "measurement.repeats"),
    ("unknown variant", _set(["cells", 0, "variants"], ["vllm-turbo"]), "vllm-turbo"),
    ("unknown decoding", _set(["cells", 0, "decoding"], ["nucleus"]), "nucleus"),
    ("unknown model in a cell", _set(["cells", 0, "model"], "llama-9000"), "cells[0].model"),
    ("bins not increasing", _set(["bins", "output"], [8, 64, 32]), "bins.output"),
    ("input above the model's maximum", _set(["bins", "input"], [64, 16384]), "max_position_embeddings"),
    ("head_dim too small", _set(["models", "tiny-llama", "architecture", "num_attention_heads"], 16), "head_dim"),
    ("unknown meter", _set(["measurement", "meter"], "wattmeter"), "measurement.meter"),
    ("bad sha256", _set(["workloads", "burstgpt", "sha256"], "xyz"), "workloads.burstgpt.sha256"),
    ("trace without columns", lambda c: c["workloads"]["burstgpt"].pop("input_column"),
     "workloads.burstgpt.input_column"),
    ("task without template", lambda c: c["workloads"]["wmt14"].pop("template"), "workloads.wmt14.template"),
    ("unknown task", _set(["workloads", "wmt14", "task"], "squad"), "workloads.wmt14.task"),
    ("local model without path", _set(["models", "tiny-llama-draft"], {"source": "local"}),
     "models.tiny-llama-draft.path"),
    ("negative cv bound", _set(["validation", "max_cv"], -1), "validation.max_cv"),
]


@pytest.mark.parametrize("name, change, named", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(tmp_path, name, change, named):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_cfg(change)))
    # --no-base: each is a whole config (one that leaves out a key), not an overlay of config.yaml
    proc = subprocess.run([sys.executable, "-m", "llm_energy", "check-config", "--no-base", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert named in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


INPUT_CASES = [
    ("missing file", None, "is missing: place the trace there"),
    ("empty file", "", "not a readable CSV trace"),
    ("misnamed column", "Context,GeneratedTokens\n5,1\n", "'ContextTokens'"),
    ("non-numeric value", TRACE_HEADER + "10,3\nten,4\n", "data row 2"),
    ("negative value", TRACE_HEADER + "10,3\n4,-2\n", "non-numeric or negative"),
    ("truncated row", TRACE_HEADER + "10,3\n12", "non-numeric or negative"),
    ("header only", TRACE_HEADER, "has a header but no requests"),
    ("binary garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "trace.csv"),
]


@pytest.mark.parametrize("name, content, message", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_trace(tmp_path, name, content, message):
    cells = [c for c in BASE["cells"] if not c.get("prompts")]  # one prompted by a task needs that task
    cfg = {"data_dir": str(tmp_path), "models": BASE["models"], "cells": cells,
           "workloads": {"t": {"file": "trace.csv", "input_column": "ContextTokens",
                               "output_column": "GeneratedTokens"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    if content is not None:
        p = tmp_path / "trace.csv"
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "llm_energy", "profile", "t", "--config", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert message in proc.stderr and "trace.csv" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------
# The same principle through the package functions that read each file at its first use: every file a
# user places or copies in is checked there, and a bad one is one line naming it, what is wrong and what
# to do (a UserError: the rule scripts turn it into one log line and exit 1).

def _one_line(err, *named):
    msg = str(err.value)
    assert "\n" not in msg and all(n in msg for n in named), msg
    return msg


# Merged measurement files (results/measurements/<hw>/<model>/<variant>/<decoding>.parquet), rule check_cell.

def _measurement_table(**change):
    import pandas as pd

    rows = [{"input_len": 64, "output_len": 8, "batch_size": 2, "repeat": r, "status": "ok", "role": "grid",
             "energy_j": 10.0 + r, "prefill_energy_j": 1.0, "duration_s": 1.0, "output_tokens": 16,
             "energy_source": "nvml", "hardware": "h100-copied", "model": "m", "variant": "vllm-eager",
             "decoding": "greedy"} for r in range(2)]
    return pd.DataFrame(rows).assign(**change)


def _cell_file(tmp_path, df=None, raw=None):
    path = tmp_path / "results/measurements/h100-copied/m/vllm-eager/greedy.parquet"
    path.parent.mkdir(parents=True)
    if raw is not None:
        path.write_bytes(raw)
    else:
        df.to_parquet(path)
    return path


CELL = {"hardware": "h100-copied", "model": "m", "variant": "vllm-eager", "decoding": "greedy"}


def test_merged_measurement_of_random_bytes_is_one_line(tmp_path):
    import os

    from llm_energy import UserError
    from llm_energy.measurement.validation import read_measurements

    path = _cell_file(tmp_path, raw=os.urandom(2000))
    with pytest.raises(UserError) as err:
        read_measurements(path, CELL)
    _one_line(err, str(path), "not a Parquet table", "copy it again from the machine that measured it")
    half = _cell_file(tmp_path / "half", _measurement_table())
    half.write_bytes(half.read_bytes()[:300])  # a copy cut short
    with pytest.raises(UserError) as err:
        read_measurements(half, CELL)
    _one_line(err, str(half), "not a Parquet table")


@pytest.mark.parametrize("drop", [["energy_j"], ["energy_j", "duration_s"], ["status"], ["hardware"], ["repeat"]])
def test_merged_measurement_without_contract_columns_names_them(tmp_path, drop):
    from llm_energy import UserError
    from llm_energy.measurement.validation import read_measurements

    path = _cell_file(tmp_path, _measurement_table().drop(columns=drop))
    with pytest.raises(UserError) as err:
        read_measurements(path, CELL)
    msg = _one_line(err, str(path), "missing", "copy it again from the machine that measured it")
    assert all(c in msg for c in drop)


@pytest.mark.parametrize("change, named", [
    ({"energy_j": "ten"}, "column energy_j holds"),
    ({"hardware": "a6000"}, "its rows are of hardware 'a6000', but the folder says 'h100-copied'"),
    ({"batch_size": 0}, "column batch_size is 0 in row 1"),
])
def test_merged_measurement_with_wrong_values_is_one_line(tmp_path, change, named):
    from llm_energy import UserError
    from llm_energy.measurement.validation import read_measurements

    path = _cell_file(tmp_path, _measurement_table(**change))
    with pytest.raises(UserError) as err:
        read_measurements(path, CELL)
    _one_line(err, str(path), named)


def test_advice_about_a_bad_measurement_file_is_one_that_works_on_this_machine(tmp_path):
    from llm_energy import UserError
    from llm_energy.measurement.validation import read_measurements

    path = _cell_file(tmp_path, _measurement_table().iloc[:0])
    with pytest.raises(UserError) as err:  # another machine's file: deleting it here cannot re-measure it
        read_measurements(path, CELL, here="cpu-x")
    msg = _one_line(err, "copy it again from the machine that measured it (this machine is cpu-x, so only a "
                         "machine detected as h100-copied can measure the cell again)")
    assert "delete" not in msg
    with pytest.raises(UserError) as err:  # this machine's own file
        read_measurements(path, CELL, here="h100-copied")
    _one_line(err, "delete it and run snakemake again to measure the cell again here")


def test_merged_measurement_empty_table_is_one_line(tmp_path):
    from llm_energy import UserError
    from llm_energy.measurement.validation import read_measurements

    path = _cell_file(tmp_path, _measurement_table().iloc[:0])
    with pytest.raises(UserError) as err:
        read_measurements(path, CELL)
    _one_line(err, str(path), "has no rows")


def test_measurement_whose_every_point_ran_out_of_memory_is_read_and_checked(tmp_path):
    import pandas as pd

    from llm_energy.measurement.validation import check_measurements, read_measurements, unusable

    oom = pd.DataFrame([{"input_len": 64, "output_len": 8, "batch_size": 2, "repeat": 0, "status": "oom",
                         "role": "grid", "output_tokens": 0, "energy_source": "nvml", **CELL}])
    checked = check_measurements(read_measurements(_cell_file(tmp_path, oom), CELL), min_window_s=1, max_cv=0.1)
    assert not checked["valid"].any() and unusable(checked) == "no point was measured (1 oom)"


# Model folders and their config.json (rule estimate: FLOPs; measure: check_model_dir).

def _model_dir(tmp_path, config='{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, '
               '"num_attention_heads": 2, "vocab_size": 100, "intermediate_size": 128}', weights=True,
               tokenizer=True):
    import numpy as np
    import safetensors.numpy

    d = tmp_path / "models" / "tiny"
    d.mkdir(parents=True)
    if config is not None:
        (d / "config.json").write_text(config)
    if weights:
        safetensors.numpy.save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(d / "model.safetensors"))
    if tokenizer:
        (d / "tokenizer.json").write_text('{"version": "1.0"}')
    return d


def test_good_model_folder_passes(tmp_path):
    from llm_energy.models.build import check_model_dir, model_facts

    d = _model_dir(tmp_path)
    assert check_model_dir(d) == d and model_facts(d)["model_type"] == "llama"


@pytest.mark.parametrize("make, named", [
    (lambda t: _model_dir(t, config=None), "has no config.json"),
    (lambda t: _model_dir(t, weights=False), "has no weights"),
    (lambda t: _model_dir(t, tokenizer=False), "has no tokenizer"),
    (lambda t: _model_dir(t, config='{"hidden_size": 64}'), "has no model_type"),
    (lambda t: _model_dir(t, config='{"model_type": "llama", "hidden_si'), "config.json is not valid JSON (line 1"),
    (lambda t: _model_dir(t, config=""), "config.json is empty"),
    (lambda t: _model_dir(t, config="[1, 2]"), "not a model config"),
])
def test_bad_model_folder_is_one_line(tmp_path, make, named):
    from llm_energy import UserError
    from llm_energy.models.build import check_model_dir

    d = make(tmp_path)
    with pytest.raises(UserError) as err:
        check_model_dir(d)
    _one_line(err, str(d), named, "delete the folder to rebuild it, or place a complete copy")


def test_model_folder_with_cut_or_damaged_files_is_one_line(tmp_path):
    from llm_energy import UserError
    from llm_energy.models.build import check_model_dir

    d = _model_dir(tmp_path)
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a copy cut short
    with pytest.raises(UserError) as err:
        check_model_dir(d)
    _one_line(err, "model.safetensors is cut short", "place a complete copy")
    weights.write_bytes(b"not a safetensors file at all")
    with pytest.raises(UserError) as err:
        check_model_dir(d)
    _one_line(err, "model.safetensors is not a safetensors file")
    d2 = _model_dir(tmp_path / "b")
    (d2 / "tokenizer.json").write_text('{"model": {"vocab": {"a": ')
    with pytest.raises(UserError) as err:
        check_model_dir(d2)
    _one_line(err, "tokenizer.json is not valid JSON (line 1)")
    d3 = _model_dir(tmp_path / "c")
    (d3 / "model.safetensors.index.json").write_text('{"weight_map": {"w": "model-00002-of-00002.safetensors"}}')
    with pytest.raises(UserError) as err:
        check_model_dir(d3)
    _one_line(err, "lacks weight shard(s) model-00002-of-00002.safetensors")


def test_corrupted_config_json_is_one_line_for_flops_and_measurement_facts(tmp_path):
    from llm_energy import UserError
    from llm_energy.models.build import model_facts
    from llm_energy.models.flops import Arch

    d = _model_dir(tmp_path, config='{"model_type": "llama",\n "hidden_size": 64,\n "num_hidden_')
    for read in (lambda: Arch.from_file(d / "config.json"), lambda: model_facts(d)):
        with pytest.raises(UserError) as err:
            read()
        _one_line(err, f"{d / 'config.json'} is not valid JSON (line 3", "delete the folder to rebuild it")
    d2 = _model_dir(tmp_path / "b", config='{"model_type": "llama", "hidden_size": 64}')
    with pytest.raises(UserError) as err:
        Arch.from_file(d2 / "config.json")
    _one_line(err, str(d2 / "config.json"), "no 'num_attention_heads'")


# Traces: token counts (the CLI cases above cover missing/empty/garbage files).

TRACE_SPEC = {"input_column": "ContextTokens", "output_column": "GeneratedTokens"}


@pytest.mark.parametrize("content, named", [
    (TRACE_HEADER + "10,3\n12,4.5\n", "column 'GeneratedTokens', data row 2: '4.5' is not a whole number"),
    (TRACE_HEADER + "10,3\n12.5,4\n", "column 'ContextTokens', data row 2: '12.5' is not a whole number"),
    (TRACE_HEADER + "10,3\n11,2\n-7,4\n", "column 'ContextTokens', data row 3: '-7' is negative"),
    (TRACE_HEADER + "10,3\n99999999999,4\n", "column 'ContextTokens', data row 2: '99999999999' is above 10,000,000"),
    (TRACE_HEADER + "10,3\n12,lots\n", "column 'GeneratedTokens', data row 2: 'lots' is not a number"),
    (TRACE_HEADER + "10,3\n12,\n", "column 'GeneratedTokens', data row 2: '' is missing"),
    (TRACE_HEADER + "10,3\n12,4\n5,2\n12", "data row 4: '' is missing; the last line '12' has 1 of 2 fields and no "
                                           "line break: the file was cut short"),
])
def test_bad_token_counts_name_column_row_and_value(tmp_path, content, named):
    from llm_energy import UserError
    from llm_energy.workloads.profile import load_trace

    p = tmp_path / "trace.csv"
    p.write_text(content)
    with pytest.raises(UserError) as err:
        load_trace(p, TRACE_SPEC)
    _one_line(err, str(p), named)


def test_trace_cut_inside_a_column_that_is_not_read_is_one_line(tmp_path):
    from llm_energy import UserError
    from llm_energy.workloads.profile import load_trace

    p = tmp_path / "burst.csv"
    p.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 "5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,230,13")
    with pytest.raises(UserError) as err:
        load_trace(p, {"input_column": "Request tokens", "output_column": "Response tokens"})
    _one_line(err, str(p), "the last line '45,ChatGPT,1087,230,13' has 5 of 6 fields and no line break",
              "cut short", "copy it again")


def test_trace_without_final_line_break_but_whole_rows_is_read_and_zero_outputs_follow_the_config(tmp_path, caplog):
    from llm_energy.workloads.profile import load_trace

    p = tmp_path / "trace.csv"
    p.write_text(TRACE_HEADER + "10,3\n12,0\n7,4")  # the published Azure files end like this
    df, info = load_trace(p, {**TRACE_SPEC, "sha256": None})
    assert df["input_tokens"].tolist() == [10, 7] and info["rows_dropped"] == {"zero output tokens (failed request)": 1}
    assert "does not end with a line break" in caplog.text  # no sha256 to prove the last row whole
    kept, _ = load_trace(p, {**TRACE_SPEC, "drop_zero_output": False})
    assert kept["output_tokens"].tolist() == [3, 0, 4]


def test_header_only_trace_advice_fits_whether_the_workload_has_a_url(tmp_path):
    from llm_energy import UserError
    from llm_energy.workloads.profile import load_trace

    p = tmp_path / "trace.csv"
    p.write_text(TRACE_HEADER)
    with pytest.raises(UserError) as err:  # placed by hand: nothing to download it from
        load_trace(p, {**TRACE_SPEC, "url": None})
    msg = _one_line(err, f"{p}: the trace has a header but no requests: place a trace with rows at {p} (the "
                         "workload has no url to download it from)")
    assert "delete" not in msg and "download it again" not in msg
    with pytest.raises(UserError) as err:
        load_trace(p, {**TRACE_SPEC, "url": "https://example.org/trace.csv"})
    _one_line(err, "has a header but no requests: delete it so that the pipeline downloads it again")
    p.write_bytes(b"\x00" * 100)  # the other messages follow the url too
    with pytest.raises(UserError) as err:
        load_trace(p, TRACE_SPEC)
    assert "downloads it again" not in _one_line(err, "binary data", "has no url to download it from")


def test_trace_of_binary_data_is_one_line(tmp_path):
    import os

    from llm_energy import UserError
    from llm_energy.workloads.profile import load_trace

    p = tmp_path / "trace.csv"
    p.write_bytes(os.urandom(4000))
    with pytest.raises(UserError) as err:
        load_trace(p, TRACE_SPEC)
    _one_line(err, str(p), "binary data, not a CSV trace", "copy it again")


# Task texts (rule profile_workload).

@pytest.mark.parametrize("task, name, content, named", [
    ("wmt14", "de.txt", "", "is empty"),
    ("wmt14", "de.txt", "\n  \n\n", "is empty"),
    ("wmt14", "de.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
    ("wmt14", "de.txt", b"Gr\xfc\xdfe aus Berlin\n", "not UTF-8 text (byte 2)"),
    ("cnn_dailymail", "cnn.csv", "", "is empty"),
    ("cnn_dailymail", "cnn.csv", "id,highlights\n1,x\n", "no 'article' column (columns: 'id', 'highlights')"),
    ("cnn_dailymail", "cnn.csv", "id,article\n1,\n2,  \n", "no cnn_dailymail examples"),
    ("cnn_dailymail", "cnn.csv", bytes(range(256)) * 8, "binary data"),
    ("wikitext2", "wiki.test.raw", " = Heading = \n\n = = Sub = = \n", "no wikitext2 examples"),
    ("wikitext2", "wiki.test.raw", b"\x1f\x8b\x08\x00" + bytes(range(1, 200)), "binary data"),
])
def test_bad_task_text_is_one_line(tmp_path, task, name, content, named):
    from llm_energy import UserError
    from llm_energy.workloads.tasks import read_texts

    p = tmp_path / name
    p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    with pytest.raises(UserError) as err:
        read_texts(task, p)
    _one_line(err, str(p), named, f"place the published {task} data there")


def test_bad_imdb_folder_is_one_line(tmp_path):
    from llm_energy import UserError
    from llm_energy.workloads.tasks import read_texts

    d = tmp_path / "aclImdb"
    (d / "test" / "pos").mkdir(parents=True)
    with pytest.raises(UserError) as err:
        read_texts("imdb", d)
    _one_line(err, str(d), "no reviews")
    (d / "test" / "pos" / "0_9.txt").write_text("")
    with pytest.raises(UserError) as err:
        read_texts("imdb", d)
    _one_line(err, str(d), "all 1 review files are empty")
    (d / "test" / "pos" / "1_8.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(UserError) as err:
        read_texts("imdb", d)
    _one_line(err, str(d / "test" / "pos" / "1_8.txt"), "binary data")
    (d / "test" / "pos" / "1_8.txt").write_text("A fine film.")
    assert read_texts("imdb", d) == ["A fine film."]  # empty reviews are skipped
    f = tmp_path / "aclImdb.tar.gz"
    f.write_bytes(b"\x1f\x8b")
    with pytest.raises(UserError) as err:
        read_texts("imdb", f)
    _one_line(err, str(f), "is a file, not the aclImdb folder")


# The PG-19 book of the measurement prompts (measurement.prompt_file, measurement/prompts.py).

class _CharTokenizer:
    """One token per character: enough to measure a book's length."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


@pytest.mark.parametrize("name, content, named", [
    ("book.txt", "", "is empty"),
    ("book.json", "", "is empty"),
    ("book.json", '{"text": ""}', "the book's text is empty"),
    ("book.json", '{"short_book_title": "x", "text": "Once upon a ti', "not valid JSON (line 1; cut short?)"),
    ("book.json", '{"title": "x"}', "has no 'text' string"),
    ("book.jsonl", '{"text": "one"}\n{"text": "tw', "not valid JSON (line 2; cut short?)"),
    ("book.txt", b"\x00\x00\x00\x01PK\x03\x04", "binary data"),
    ("book.json", b"\xff\xfe{\x00\"\x00", "binary data"),
])
def test_bad_prompt_book_is_one_line(tmp_path, name, content, named):
    from llm_energy import UserError
    from llm_energy.measurement.prompts import BookPrompts

    p = tmp_path / name
    p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    with pytest.raises(UserError) as err:
        BookPrompts.from_file(p, _CharTokenizer())
    _one_line(err, str(p), named, "place a complete PG-19 book there")


def test_prompt_book_shorter_than_the_longest_prompt_is_one_line(tmp_path):
    from llm_energy import UserError
    from llm_energy.measurement.prompts import BookPrompts

    p = tmp_path / "book.txt"
    p.write_text("x" * 10)
    with pytest.raises(UserError) as err:
        BookPrompts.from_file(p, _CharTokenizer())
    _one_line(err, str(p), "fewer than 16 tokens (10)")
    p.write_text("x" * 500)
    with pytest.raises(UserError) as err:
        BookPrompts.from_file(p, _CharTokenizer(), longest=1024)  # checked before anything is measured
    _one_line(err, str(p), "the book has 500 tokens, fewer than the longest prompt (1024 tokens)")
    book = BookPrompts.from_file(p, _CharTokenizer())
    assert len(book(400, 1, 2, 0)[0]) == 400  # shorter prompts are cut as before
    with pytest.raises(UserError) as err:
        book(1024, 1, 1, 0)  # without longest, at the first prompt that is too long
    _one_line(err, str(p), "fewer than the longest prompt (1024 tokens)")
