"""What each format means: the anchor's rules for joining, history, system turns, tools, preference and KTO."""

from __future__ import annotations

import json

import pytest

from tunelab.data.conversation import Message, Role
from tunelab.data.dataset_info import parse_entry
from tunelab.data.formats import CONVERTERS, ConvertContext
from tunelab.data.validate import RowChecker

U, A, F, OBS = Role.USER, Role.ASSISTANT, Role.FUNCTION, Role.OBSERVATION


def convert(entry, row, stage="sft", tmp_path=None):
    attr = parse_entry("t", {"file_name": "t.json", **entry}, tmp_path or __import__("pathlib").Path("."))
    ck = RowChecker("t.json", 1)
    example = CONVERTERS[attr.formatting](row, ConvertContext(attr, stage, str(tmp_path) if tmp_path else None), ck)
    return example, [str(p) for p in ck.problems]


def test_alpaca_joins_instruction_and_input_and_turns_history_into_turns():
    entry = {"columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                         "system": "system"}}  # fmt: skip
    row = {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "Translator.",
           "history": [["Hi", "Hello!"], ["Ready?", "Yes."]]}  # fmt: skip
    example, problems = convert(entry, row)
    assert problems == []
    assert example.messages == (
        Message(U, "Hi"), Message(A, "Hello!"), Message(U, "Ready?"), Message(A, "Yes."),
        Message(U, "Translate\nbonjour"), Message(A, "hello"),
    )  # fmt: skip
    assert example.system == "Translator."


def test_alpaca_without_instruction_uses_input_alone():
    example, _ = convert({}, {"instruction": "", "input": "only input", "output": "ok"})
    assert example.messages[0] == Message(U, "only input")


def test_alpaca_preference_and_kto():
    pref = {"ranking": True, "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}}
    example, problems = convert(pref, {"instruction": "2+2?", "input": "", "chosen": "4", "rejected": "5"}, "dpo")
    assert problems == []
    assert example.messages == (Message(U, "2+2?"),)
    assert (example.chosen, example.rejected) == (Message(A, "4"), Message(A, "5"))
    kto = {"columns": {"prompt": "instruction", "response": "output", "kto_tag": "label"}}
    example, _ = convert(kto, {"instruction": "Hi", "output": "Go away.", "label": False}, "kto")
    assert example.kto_tag is False and example.messages[-1] == Message(A, "Go away.")
    example, _ = convert(kto, {"instruction": "Hi", "output": "Hello!", "label": "true"}, "kto")  # CSV text
    assert example.kto_tag is True


def test_pretraining_text_column():
    example, problems = convert({"columns": {"prompt": "text"}}, {"text": "Plain text."}, "pt")
    assert problems == [] and example.text == "Plain text." and example.messages == ()


def test_sharegpt_tags_function_call_observation_and_leading_system_turn():
    entry = {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system", "tools": "tools"}}
    call = json.dumps({"name": "lookup", "arguments": {"q": "x"}})
    row = {
        "conversations": [
            {"from": "system", "value": "From the turn."},
            {"from": "human", "value": "Find x"},
            {"from": "function_call", "value": call},
            {"from": "observation", "value": "x=1"},
            {"from": "gpt", "value": "x is 1."},
        ],
        "system": "From the column (overridden).",
        "tools": json.dumps([{"name": "lookup"}]),
    }
    example, problems = convert(entry, row)
    assert problems == []
    assert example.system == "From the turn."
    assert example.messages == (Message(U, "Find x"), Message(F, call), Message(OBS, "x=1"), Message(A, "x is 1."))
    assert json.loads(example.tools) == [{"name": "lookup"}]


def test_sharegpt_custom_tags_and_whitespace_tools():
    entry = {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
             "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"}}
    row = {"conversations": [{"from": "user", "value": "Q"}, {"from": "assistant", "value": "A"}], "system": " ", "tools": " "}
    example, problems = convert(entry, row)
    assert problems == []
    assert example.messages == (Message(U, "Q"), Message(A, "A"))
    assert example.system == " " and example.tools is None  # kept verbatim / blank tools mean none


def test_sharegpt_preference():
    entry = {"formatting": "sharegpt", "ranking": True,
             "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}
    row = {"conversations": [{"from": "human", "value": "Q"}], "chosen": {"from": "gpt", "value": "good"},
           "rejected": {"from": "gpt", "value": "bad"}}
    example, problems = convert(entry, row, "dpo")
    assert problems == []
    assert example.messages == (Message(U, "Q"),)
    assert (example.chosen, example.rejected) == (Message(A, "good"), Message(A, "bad"))


def test_openai_defaults_tool_results_joined_and_preference():
    entry = {"formatting": "openai", "columns": {"messages": "messages", "tools": "tools"}}
    row = {"messages": [
        {"role": "user", "content": "Two lookups"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"type": "function", "function": {"name": "b", "arguments": {"k": 1}}}]},
        {"role": "tool", "content": "ra"},
        {"role": "tool", "content": "rb"},
        {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
    ], "tools": [{"type": "function", "function": {"name": "a"}}]}  # fmt: skip
    example, problems = convert(entry, row)
    assert problems == []
    assert example.messages == (
        Message(U, "Two lookups"),
        Message(F, json.dumps([{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"k": 1}}])),
        Message(OBS, "ra\n</tool_response>\n<tool_response>\nrb"),
        Message(A, "Done."),
    )
    assert json.loads(example.tools) == [{"type": "function", "function": {"name": "a"}}]

    pref = {"formatting": "openai", "ranking": True,
            "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}}
    row = {"messages": [{"role": "user", "content": "Q"}], "chosen": {"role": "assistant", "content": "good"},
           "rejected": {"role": "assistant", "content": "bad"}}
    example, problems = convert(pref, row, "dpo")
    assert problems == [] and example.chosen == Message(A, "good")


def test_media_paths_resolve_against_media_dir(tmp_path):
    (tmp_path / "img.png").write_bytes(b"png")
    entry = {"columns": {"prompt": "instruction", "response": "output", "images": "images"}}
    example, problems = convert(entry, {"instruction": "<image>What?", "output": "A cat.", "images": ["img.png"]},
                                tmp_path=tmp_path)  # fmt: skip
    assert problems == []
    assert example.images == (str(tmp_path / "img.png"),)


@pytest.mark.parametrize("stage", ["ppo", "grpo"])
def test_prompt_stages_accept_rows_without_a_response(stage):
    example, problems = convert({}, {"instruction": "Write a poem.", "input": ""}, stage)
    assert problems == [] and example.messages == (Message(U, "Write a poem."),)


def test_sharegpt_system_turn_only_first():
    entry = {"formatting": "sharegpt"}
    row = {"conversations": [{"from": "human", "value": "Q"}, {"from": "system", "value": "S"}]}
    example, problems = convert(entry, row)
    assert example is None
    assert problems == ["t.json:1: conversations[1].from: a system turn ('system') is only allowed as the first message"]
