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
    proc = subprocess.run([sys.executable, "-m", "llm_energy", "check-config", str(path)], capture_output=True,
                          text=True, timeout=60)
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
    cfg = {"data_dir": str(tmp_path), "models": BASE["models"], "cells": BASE["cells"],
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
