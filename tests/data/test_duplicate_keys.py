"""A key written twice in one JSON object is a problem, not a silently dropped value."""

from __future__ import annotations

import pytest
from _datafiles import register

from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_splits
from tunelab.data.validate import InvalidDataError


@pytest.mark.parametrize(("text", "line"), [
    ('{"instruction": "Hi", "output": "first", "output": "second"}\n', "{path}:1: row: the key 'output' appears twice"),
    ('{"conversations": [{"from": "human", "value": "a", "value": "b"}, {"from": "gpt", "value": "c"}]}\n',
     "{path}:1: conversations[0]: the key 'value' appears twice"),
])
def test_a_repeated_key_is_named_with_its_row(data_dir, text, line):
    path = data_dir / "d.jsonl"
    path.write_text(text, encoding="utf-8")
    entry = {"file_name": "d.jsonl"} if "instruction" in text else {
        "file_name": "d.jsonl", "formatting": "sharegpt", "columns": {"messages": "conversations"}}
    register(data_dir, {"mine": entry})
    with pytest.raises(InvalidDataError) as failed:
        load_splits(DataArguments(dataset="mine", dataset_dir=str(data_dir)), "sft")
    assert any(str(p).startswith(line.format(path=path)) for p in failed.value.problems), failed.value.message


def test_distinct_keys_read_as_before(data_dir):
    (data_dir / "d.jsonl").write_text('{"instruction": "Hi", "input": "", "output": "Hello"}\n', encoding="utf-8")
    register(data_dir, {"mine": {"file_name": "d.jsonl"}})
    assert len(load_splits(DataArguments(dataset="mine", dataset_dir=str(data_dir)), "sft").train) == 1
