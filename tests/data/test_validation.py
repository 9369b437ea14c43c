"""Each kind of bad example is reported as `file:row: field: reason`, the same by `tunelab data check`
and by the training data path; `skip_invalid` drops such rows and says how many."""

from __future__ import annotations

import json
import logging

import pytest
from _datafiles import register

from tunelab.cli.main import main
from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_splits
from tunelab.data.validate import InvalidDataError

GOOD = {"instruction": "Hi", "input": "", "output": "Hello!"}
SHAREGPT = {"formatting": "sharegpt", "columns": {"messages": "conversations"}}
PREF = {"formatting": "sharegpt", "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}  # fmt: skip


def _jsonl(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


# name: (registry entry, file name, file text, stage, expected line with {path})
CASES = {
    "malformed_json_line": ({}, "bad.jsonl", _jsonl(GOOD, '{"instruction": "Hi", "output": "x"', GOOD), "sft",
                            "{path}:2: json: malformed JSON at line 2, column 36: Expecting ',' delimiter"),
    "malformed_json_array": ({}, "bad.json", '[\n  {"instruction": "Hi", "output": "x"},\n  {"instruction": }\n]\n', "sft",
                             "{path}:3: json: malformed JSON at line 3, column 19: Expecting value"),
    "missing_field": ({}, "d.jsonl", _jsonl(GOOD, {"instruction": "Hi", "input": ""}), "sft",
                      "{path}:2: output: missing required field"),
    "wrong_type": ({"columns": {"prompt": "instruction", "response": "output", "history": "history"}}, "d.jsonl",
                   _jsonl({"instruction": "Hi", "output": "Yo", "history": "earlier chat"}), "sft",
                   "{path}:1: history: expected a list of [prompt, response] pairs, got string"),
    "empty_content": (SHAREGPT, "d.jsonl",
                      _jsonl({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "  "}]}), "sft",
                      "{path}:1: conversations[1].value: empty content"),
    "roles_out_of_order": (SHAREGPT, "d.jsonl",
                           _jsonl({"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Again"}]}),
                           "sft", "{path}:1: conversations[1].from: roles out of order: expected an assistant or "
                           "function call turn ('gpt' or 'function_call'), got 'human'"),
    "missing_media": ({"columns": {"prompt": "instruction", "response": "output", "images": "images"}}, "d.jsonl",
                      _jsonl({"instruction": "<image>What is it?", "output": "A cat.", "images": ["cat.png"]}), "sft",
                      "{path}:1: images[0]: file not found: cat.png (looked in {dir})"),
    "preference_without_rejected": (PREF, "d.jsonl",
                                    _jsonl({"conversations": [{"from": "human", "value": "Q"}],
                                            "chosen": {"from": "gpt", "value": "A"}}), "dpo",
                                    "{path}:1: rejected: missing required field (preference data needs chosen and rejected)"),
}  # fmt: skip


def _setup(data_dir, name):
    entry, file_name, text, stage, expected = CASES[name]
    (data_dir / file_name).write_text(text, encoding="utf-8")
    register(data_dir, {"bad": {"file_name": file_name, **entry}})
    return stage, expected.format(path=data_dir / file_name, dir=data_dir)


@pytest.mark.parametrize("name", list(CASES))
def test_data_check_names_file_row_field_and_reason(data_dir, capsys, name):
    stage, expected = _setup(data_dir, name)
    code = main(["data", "check", "bad", "--dataset_dir", str(data_dir), "--stage", stage])
    out = capsys.readouterr().out
    assert code == 1
    assert expected in out.splitlines()
    assert "1 problem found" in out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tunelab.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), family="qwen2")


@pytest.mark.parametrize("name", list(CASES))
def test_tunelab_train_stops_with_the_same_line(data_dir, name, tiny_model, capsys, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(data_dir.parent / "cache"))
    stage, expected = _setup(data_dir, name)
    out = data_dir.parent / "out"
    code = main(["train", f"--model_name_or_path={tiny_model}", f"--stage={stage}", "--do_train=true",
                 "--template=qwen", "--dataset=bad", f"--dataset_dir={data_dir}", f"--output_dir={out}",
                 "--max_steps=1", "--report_to=none"])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err.splitlines()
    assert not (out / "trainer_log.jsonl").exists()


@pytest.mark.parametrize("name", list(CASES))
def test_training_data_path_stops_with_the_same_line(data_dir, name):
    stage, expected = _setup(data_dir, name)
    with pytest.raises(InvalidDataError) as info:
        load_splits(DataArguments(dataset="bad", dataset_dir=str(data_dir)), stage)
    assert expected in info.value.message.splitlines()
    assert [str(p) for p in info.value.problems] == [expected]
    assert "skip_invalid: true" in info.value.message


def test_skip_invalid_drops_and_reports(data_dir, caplog):
    _setup(data_dir, "missing_field")
    with caplog.at_level(logging.WARNING, logger="tunelab.data"):
        splits = load_splits(DataArguments(dataset="bad", dataset_dir=str(data_dir), skip_invalid=True), "sft")
    assert len(splits.train) == 1
    assert "dropped 1 invalid examples of data set bad" in caplog.text


def test_problem_list_is_capped_with_total(data_dir):
    rows = [{"instruction": "Hi", "input": ""}] * 25
    (data_dir / "d.jsonl").write_text(_jsonl(*rows))
    register(data_dir, {"bad": {"file_name": "d.jsonl"}})
    with pytest.raises(InvalidDataError) as info:
        load_splits(DataArguments(dataset="bad", dataset_dir=str(data_dir)), "sft")
    lines = info.value.message.splitlines()
    assert lines[1] == f"{data_dir / 'd.jsonl'}:1: output: missing required field"
    assert "... and 5 more" in lines and "25 problems found" in lines


def test_data_check_clean_exit_zero_and_counts(data_dir, capsys):
    (data_dir / "d.jsonl").write_text(_jsonl(GOOD, GOOD))
    register(data_dir, {"good": {"file_name": "d.jsonl"}})
    assert main(["data", "check", "good", "--dataset_dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["good", "alpaca", "2", "2", "0"]
    assert "no problems found" in out


def test_data_check_unknown_name_is_a_user_error(data_dir, capsys):
    register(data_dir, {"fintech": {"file_name": "f.json"}})
    assert main(["data", "check", "fintec", "--dataset_dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "unknown data set 'fintec'" in err and "Did you mean: fintech?" in err


def test_data_check_token_lengths_with_a_tokenizer(data_dir, capsys, tokenizer_dir):
    (data_dir / "d.jsonl").write_text(_jsonl(GOOD, {"instruction": "Hi " * 50, "input": "", "output": "ok"}))
    register(data_dir, {"good": {"file_name": "d.jsonl"}})
    code = main(["data", "check", "good", "--dataset_dir", str(data_dir),
                 "--model_name_or_path", str(tokenizer_dir / "qwen2.5"), "--cutoff_len", "40"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("token lengths"))
    assert line.endswith("1 of 2 examples exceed cutoff_len 40")
