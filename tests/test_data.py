
import pytest

from llm_energy import UserError
from llm_energy.pipeline.io import sha256_of
from llm_energy.workloads.profile import load_trace, stats
from llm_energy.workloads.sources import fetch

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


def test_task_profile_counts_templated_tokens_of_a_seeded_sample(shared, tiny_model):
    from transformers import AutoTokenizer

    from llm_energy.workloads.tasks import profile_task

    tok = AutoTokenizer.from_pretrained(tiny_model)
    path = shared / "wmt14/data_de_validation.txt"
    df, info = profile_task("wmt14", path, tok, "DE: {text}\nEN:", 64, n_examples=2000, seed=0)
    # Computed here independently: every line of the file, one tokenizer call each.
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    expected = sorted(len(tok(f"DE: {line.strip()}\nEN:").input_ids) for line in lines)
    assert sorted(df["input_tokens"]) == expected  # 1,000 lines < 2,000 asked: all of them
    assert (df["output_tokens"] == 64).all() and "fewer than 2000" in info["note"]
    small, info = profile_task("wmt14", path, tok, "{text}", 1, n_examples=100, seed=5)
    again, _ = profile_task("wmt14", path, tok, "{text}", 1, n_examples=100, seed=5)
    assert len(small) == 100 and small.equals(again) and info["rows_dropped"] == {"not sampled": 900}


def test_task_reader_errors_are_one_line(tmp_path):
    from llm_energy.workloads.tasks import read_texts

    with pytest.raises(UserError, match="is missing: place the imdb data there"):
        read_texts("imdb", tmp_path / "aclImdb")
    bad = tmp_path / "c.csv"
    bad.write_text("title,body\na,b\n")
    with pytest.raises(UserError, match="no 'article' column"):
        read_texts("cnn_dailymail", bad)


def test_imdb_and_wikitext_readers(shared):
    from llm_energy.workloads.tasks import read_texts

    reviews = read_texts("imdb", shared / "imdb/aclImdb")
    assert len(reviews) == 1000 and all(r.strip() for r in reviews)
    paras = read_texts("wikitext2", shared / "wikitext2/wiki.test.raw")
    assert not any(p.startswith("=") for p in paras) and len(paras) > 1000


def _tarball(tmp_path):
    import io
    import tarfile

    path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in [("aclImdb/README", "readme"), ("aclImdb/test/pos/0_9.txt", "great"),
                           ("aclImdb/test/neg/1_2.txt", "awful"), ("aclImdb/test/urls_pos.txt", "http://x"),
                           ("aclImdb/train/pos/5_8.txt", "fine")]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_folder_is_extracted_in_part_and_read_as_a_task(tmp_path):
    from llm_energy.workloads.sources import fetch_archive
    from llm_energy.workloads.tasks import read_texts

    archive = _tarball(tmp_path)
    dest = tmp_path / "raw" / "aclImdb"
    fetch_archive(dest, archive.as_uri(), "aclImdb", ["aclImdb/test/pos/", "aclImdb/test/neg/", "aclImdb/README"],
                  sha256_of(archive))
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["README", "test/neg/1_2.txt", "test/pos/0_9.txt"]  # no train/, no urls file
    assert sorted(read_texts("imdb", dest)) == ["awful", "great"]
    assert [p.name for p in dest.parent.iterdir()] == ["aclImdb"]  # no temporary folder left
    with pytest.raises(UserError, match="has sha256"):
        fetch_archive(tmp_path / "raw2" / "aclImdb", archive.as_uri(), "aclImdb", ["aclImdb/test/"], "0" * 64)
    assert not (tmp_path / "raw2" / "aclImdb").exists()
    with pytest.raises(UserError, match="could not download"):
        fetch_archive(tmp_path / "raw3" / "x", (tmp_path / "nope.tar.gz").as_uri(), "aclImdb", ["aclImdb/"])
