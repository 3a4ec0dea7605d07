import json

import pandas as pd
import pytest

from llm_energy import UserError
from llm_energy.data import fetch, sha256_of
from llm_energy.workloads import load_trace, stats

AZURE = {"input_column": "ContextTokens", "output_column": "GeneratedTokens"}
BURST = {"input_column": "Request tokens", "output_column": "Response tokens"}


def test_azure_code_statistics_match_the_published_file(shared):
    df, info = load_trace(shared / "azure_llm_2023/AzureLLMInferenceTrace_code.csv", AZURE)
    s = stats(df, info)
    # Figures from shared/data/README.md (computed independently with the csv module).
    assert s["n_requests"] == 8819
    assert s["input_tokens"]["mean"] == pytest.approx(2047.8, abs=0.05)
    assert s["input_tokens"]["median"] == 1469 and s["input_tokens"]["p99"] == pytest.approx(7436, abs=1)
    assert s["output_tokens"]["median"] == 13 and s["output_tokens"]["p99"] == pytest.approx(251, abs=1)


def test_burstgpt_failed_requests_dropped_and_counted(shared):
    path = shared / "burstgpt/burstgpt_slice.csv"
    df, info = load_trace(path, {**BURST, "drop_zero_output": True})
    assert len(df) == 383 and info["rows_dropped"] == {"zero output tokens (failed request)": 17}
    assert stats(df)["input_tokens"]["median"] == 353
    kept, _ = load_trace(path, {**BURST, "drop_zero_output": False})
    assert len(kept) == 400
    conv, info = load_trace(path, {**BURST, "drop_zero_output": False, "filter": {"Log Type": "Conversation log"}})
    assert len(conv) == 398 and info["rows_dropped"] == {"Log Type != 'Conversation log'": 2}


@pytest.mark.parametrize("content, message", [
    ("", "not a readable CSV trace"),
    ("a,b\n1,2\n", "column(s) 'ContextTokens', 'GeneratedTokens' not found"),
    ("ContextTokens,GeneratedTokens\n", "has a header but no requests"),
    ("ContextTokens,GeneratedTokens\n10,3\nabc,4\n", "non-numeric or negative"),
    ("ContextTokens,GeneratedTokens\n10,3\n12,-1\n", "non-numeric or negative"),
    ("ContextTokens,GeneratedTokens\n10,3\n12\n", "non-numeric or negative"),
])
def test_malformed_traces_give_one_line(tmp_path, content, message):
    p = tmp_path / "t.csv"
    p.write_text(content)
    with pytest.raises(UserError) as err:
        load_trace(p, AZURE)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_present_file_is_kept_and_checked(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n")
    assert fetch(p, "http://127.0.0.1:9/never", sha256_of(p)) == p
    with pytest.raises(UserError, match="has sha256"):
        fetch(p, None, "0" * 64)


def test_failed_download_says_what_to_place_where_and_leaves_nothing(tmp_path):
    dest = tmp_path / "raw" / "trace.csv"
    with pytest.raises(UserError) as err:
        fetch(dest, "http://127.0.0.1:9/trace.csv", None, timeout_s=5)
    assert f"place the file at {dest}" in str(err.value)
    assert not dest.exists() and not list(tmp_path.rglob("*trace.csv*"))
