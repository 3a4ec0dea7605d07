"""Prompts cut from a PG-19 book to exact token lengths."""

import json

import pytest

from llm_energy import UserError
from llm_energy.measurement.prompts import BookPrompts, RandomPrompts, read_book


def test_book_prompts_have_exact_lengths_and_come_from_the_book():
    book = list(range(100, 400))  # 300 "tokens"
    p = BookPrompts(book, seed=1)
    batch = p(input_len=50, output_len=8, batch_size=4, stream=0)
    assert [len(x) for x in batch] == [50] * 4
    for row in batch:  # each row is a contiguous (possibly wrapped) run of the book
        start = book.index(row[0])
        assert row == [book[(start + k) % len(book)] for k in range(50)]
    assert p(50, 8, 4, 0) == batch and p(50, 8, 4, 1) != batch  # seeded; another repeat differs


def test_longer_than_the_book_wraps_and_says_so():
    p = BookPrompts(list(range(20, 60)), seed=0)
    batch = p(input_len=100, output_len=1, batch_size=2, stream=0)
    assert all(len(x) == 100 for x in batch) and p.wrapped == 2


def test_pg19_record_is_read_and_tokenized(shared, tiny_model):
    from transformers import AutoTokenizer

    text = read_book(shared / "pg19/sample.json")
    assert text == json.loads((shared / "pg19/sample.json").read_text())["text"]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    p = BookPrompts.from_file(shared / "pg19/sample.json", tok, seed=0)
    assert len(p.ids) > 50_000  # a whole book
    (row,) = p(4096, 64, 1, 0)
    assert len(row) == 4096 and p.wrapped == 0 and min(row) >= 3  # text tokens only, no BOS/EOS


def test_missing_book_is_one_line(tmp_path):
    with pytest.raises(UserError, match="is missing: place a PG-19 book there"):
        read_book(tmp_path / "book.json")


def test_random_prompts_avoid_special_tokens():
    (row,) = RandomPrompts(seed=0)(200, 4, 1, 0)
    assert len(row) == 200 and min(row) >= 3


def test_task_prompts_are_real_text_of_exact_length_ending_in_the_template(tiny_model):
    from transformers import AutoTokenizer

    from llm_energy.measurement.prompts import TaskPrompts

    tok = AutoTokenizer.from_pretrained(tiny_model)
    texts = ["The quick brown fox jumps over the lazy dog. " * 3, "A short one.", "Another article about cats."]
    prompts = TaskPrompts("news", texts, "{text}\nTL;DR:", tok, seed=0)
    tail = tok("\nTL;DR:", add_special_tokens=False)["input_ids"]
    for n in (8, 40, 200):  # shorter than one text, and longer than all of them (joined, wrapping)
        batch = prompts(n, 4, 3, stream=0)
        assert [len(p) for p in batch] == [n] * 3
        assert all(p[-len(tail):] == tail for p in batch)
    assert prompts.source == "task:news" and prompts.wrapped > 0
    assert prompts(40, 4, 3, 0) == prompts(40, 4, 3, 0) and prompts(40, 4, 3, 0) != prompts(40, 4, 3, 1)
    with pytest.raises(UserError, match="cannot hold the template"):
        prompts(len(tail), 4, 1, 0)
