"""Every format loads from every file type that can hold it, into the same `Example`s."""

from __future__ import annotations

import json

import pytest
from _datafiles import register, write_rows

from tunelab.config.data_args import DataArguments
from tunelab.data.conversation import Example, Message, Role
from tunelab.data.loader import load_examples

U, A, F, OBS = Role.USER, Role.ASSISTANT, Role.FUNCTION, Role.OBSERVATION

ALPACA_ROWS = [
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "system": "Be brief."},
    {"instruction": "Say hi.", "input": "", "output": "Hi!", "system": ""},
]
ALPACA_ENTRY = {"columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}}
ALPACA_EXPECTED = [
    Example(messages=(Message(U, "Add the numbers.\n2 and 3"), Message(A, "5")), system="Be brief."),
    Example(messages=(Message(U, "Say hi."), Message(A, "Hi!"))),
]

SHAREGPT_ROWS = [
    {"conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi, how can I help?"},
                       {"from": "human", "value": "Weather?"}, {"from": "gpt", "value": "Sunny."}],
     "system": "You are kind."},
    {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}], "system": None},
]  # fmt: skip
SHAREGPT_EXPECTED = [
    Example(messages=(Message(U, "Hello"), Message(A, "Hi, how can I help?"), Message(U, "Weather?"), Message(A, "Sunny.")),
            system="You are kind."),
    Example(messages=(Message(U, "2+2?"), Message(A, "4"))),
]  # fmt: skip

OPENAI_ROWS = [
    {"messages": [
        {"role": "system", "content": "Use tools.", "tool_calls": None},
        {"role": "user", "content": "Weather in Paris?", "tool_calls": None},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "content": "{\"temp\": 18}", "tool_calls": None},
        {"role": "assistant", "content": "18 degrees.", "tool_calls": None},
    ]},
    {"messages": [
        {"role": "user", "content": "Hi", "tool_calls": None},
        {"role": "assistant", "content": "Hello!", "tool_calls": None},
    ]},
]  # fmt: skip
OPENAI_EXPECTED = [
    Example(
        messages=(Message(U, "Weather in Paris?"),
                  Message(F, json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}}])),
                  Message(OBS, "{\"temp\": 18}"), Message(A, "18 degrees.")),
        system="Use tools.",
    ),  # fmt: skip
    Example(messages=(Message(U, "Hi"), Message(A, "Hello!"))),
]

TEXT_ROWS = [{"text": "The first document."}, {"text": "The second, longer document."}]
TEXT_EXPECTED = [Example(text="The first document."), Example(text="The second, longer document.")]

CASES = {
    "alpaca": (ALPACA_ENTRY, ALPACA_ROWS, ALPACA_EXPECTED, "sft", ["json", "jsonl", "csv", "parquet", "arrow", "folder"]),
    "sharegpt": ({"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"}},
                 SHAREGPT_ROWS, SHAREGPT_EXPECTED, "sft", ["json", "jsonl", "parquet", "arrow", "folder"]),
    "openai": ({"formatting": "openai", "columns": {"messages": "messages"}},
               OPENAI_ROWS, OPENAI_EXPECTED, "sft", ["json", "jsonl", "parquet", "arrow", "folder"]),
    "pt": ({"columns": {"prompt": "text"}}, TEXT_ROWS, TEXT_EXPECTED, "pt",
           ["json", "jsonl", "csv", "parquet", "arrow", "txt", "folder"]),
}  # fmt: skip

PARAMS = [(fmt, kind) for fmt, case in CASES.items() for kind in case[4]]


@pytest.mark.parametrize(("fmt", "kind"), PARAMS, ids=[f"{f}-{k}" for f, k in PARAMS])
def test_format_loads_from_file_type(data_dir, fmt, kind):
    entry, rows, expected, stage, _ = CASES[fmt]
    if kind == "folder":
        # Two files of one type in a folder, read in name order.
        write_rows(data_dir / "parts" / "a", rows[:1], "jsonl")
        write_rows(data_dir / "parts" / "b", rows[1:], "jsonl")
        file_name = "parts"
    else:
        file_name = write_rows(data_dir / "set", rows, kind).name
    register(data_dir, {"mine": {"file_name": file_name, **entry}})
    examples = load_examples(DataArguments(dataset="mine", dataset_dir=str(data_dir)), stage)
    assert examples == expected
    assert [e.source.row for e in examples] == ([1, 1] if kind == "folder" else
                                                [2, 3] if kind == "csv" else [1, 2])  # fmt: skip
    assert examples[0].source.dataset == "mine"


def test_json_file_may_hold_json_lines(data_dir):
    path = data_dir / "lines.json"
    path.write_text("\n".join(json.dumps(r) for r in ALPACA_ROWS) + "\n")
    register(data_dir, {"mine": {"file_name": "lines.json", **ALPACA_ENTRY}})
    assert load_examples(DataArguments(dataset="mine", dataset_dir=str(data_dir)), "sft") == ALPACA_EXPECTED


def test_arrow_file_format_is_read_too(data_dir):
    import pyarrow as pa

    table = pa.Table.from_pylist(ALPACA_ROWS)
    with pa.OSFile(str(data_dir / "set.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    register(data_dir, {"mine": {"file_name": "set.arrow", **ALPACA_ENTRY}})
    assert load_examples(DataArguments(dataset="mine", dataset_dir=str(data_dir)), "sft") == ALPACA_EXPECTED


def test_folder_of_mixed_types_is_refused(data_dir):
    from tunelab.errors import UserError

    write_rows(data_dir / "parts" / "a", ALPACA_ROWS, "json")
    write_rows(data_dir / "parts" / "b", ALPACA_ROWS, "csv")
    register(data_dir, {"mine": {"file_name": "parts"}})
    with pytest.raises(UserError, match="one type, found csv, json"):
        load_examples(DataArguments(dataset="mine", dataset_dir=str(data_dir)), "sft")
