"""`tunelab data check` token lengths: each example encoded by tunelab's template engine, untruncated.

The lengths are those of the rows training would build (same template, stage and options) before
`cutoff_len` cuts them; with the real Qwen2.5 tokenizer they equal `apply_chat_template`'s.
"""

from __future__ import annotations

import json

import pytest
from _datafiles import register

from tunelab.cli.main import main
from tunelab.config.data_args import DataArguments
from tunelab.data.check import run_check, template_counter
from tunelab.data.templates import get_template

ROWS = [
    {"instruction": "Hi", "input": "", "output": "Hello!"},
    {"instruction": "Hi " * 50, "input": "", "output": "ok"},
    {"instruction": "Translate to French", "input": "good morning", "output": "bonjour"},
]
PREF = {"formatting": "sharegpt", "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}  # fmt: skip


@pytest.fixture
def qwen_dir(tokenizer_dir):
    return str(tokenizer_dir / "qwen2.5")


@pytest.fixture
def small(data_dir):
    (data_dir / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    register(data_dir, {"d": {"file_name": "d.jsonl"}})
    return data_dir


def _lengths_line(argv, capsys) -> str:
    assert main(argv) == 0
    return next(x for x in capsys.readouterr().out.splitlines() if x.startswith("token lengths"))


@pytest.mark.parametrize("template", [[], ["--template", "qwen"], ["--template", "auto"]])
def test_qwen_lengths_and_count_over_cutoff(small, qwen_dir, capsys, template) -> None:
    """The named `qwen` template and the tokenizer's own jinja (auto) give the same real lengths."""
    line = _lengths_line(["data", "check", "d", "--dataset_dir", str(small), "--model_name_or_path", qwen_dir,
                          "--cutoff_len", "40", *template], capsys)  # fmt: skip
    assert line == "token lengths: min 34 / median 39 / p95 78 / max 83; 1 of 3 examples exceed cutoff_len 40"


def test_lengths_follow_the_chosen_template(small, qwen_dir, capsys) -> None:
    """chatml has no default system prompt (21 tokens fewer each); llama3's markup is longer."""
    args = ["data", "check", "d", "--dataset_dir", str(small), "--model_name_or_path", qwen_dir, "--cutoff_len", "40"]
    assert _lengths_line([*args, "--template", "chatml"], capsys) == (
        "token lengths: min 13 / median 18 / p95 57 / max 62; 1 of 3 examples exceed cutoff_len 40"
    )
    assert _lengths_line([*args, "--template", "llama3"], capsys).endswith("3 of 3 examples exceed cutoff_len 40")


def test_lengths_are_untruncated_and_equal_apply_chat_template(small, qwen_dir) -> None:
    """A cutoff below every example still reports the full lengths (the ones training would cut)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(qwen_dir)
    data_args = DataArguments(dataset="d", dataset_dir=str(small), cutoff_len=8)
    counter = template_counter(tokenizer, get_template("qwen", tokenizer), "sft", data_args)
    report = run_check(["d"], data_args, "sft", counter=counter)
    expected = [
        len(tokenizer.apply_chat_template(
            [{"role": "user", "content": (r["instruction"] + ("\n" + r["input"] if r["input"] else ""))},
             {"role": "assistant", "content": r["output"]}], tokenize=True, return_dict=False))
        for r in ROWS
    ]  # fmt: skip
    assert sorted(expected) == [34, 39, 83]
    assert report.lengths is not None
    assert (report.lengths.minimum, report.lengths.median, report.lengths.maximum) == (34, 39, 83)
    assert (report.lengths.over_cutoff, report.lengths.count) == (3, 3)


def test_preference_pairs_count_the_longer_answer(data_dir, qwen_dir, capsys) -> None:
    row = {"conversations": [{"from": "human", "value": "Pick one"}],
           "chosen": {"from": "gpt", "value": "A fairly long chosen answer here"}, "rejected": {"from": "gpt", "value": "B"}}  # fmt: skip
    (data_dir / "p.jsonl").write_text(json.dumps(row) + "\n")
    register(data_dir, {"p": {"file_name": "p.jsonl", **PREF}})
    line = _lengths_line(["data", "check", "p", "--dataset_dir", str(data_dir), "--model_name_or_path", qwen_dir,
                          "--stage", "dpo", "--template", "qwen"], capsys)  # fmt: skip
    assert line == "token lengths: min 39 / median 39 / p95 39 / max 39"


def test_unknown_template_is_a_user_error(small, qwen_dir, capsys) -> None:
    code = main(["data", "check", "d", "--dataset_dir", str(small), "--model_name_or_path", qwen_dir, "--template", "qwen9"])
    assert code == 2
    assert "qwen9" in capsys.readouterr().err
