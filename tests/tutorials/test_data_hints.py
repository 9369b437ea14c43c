"""Points 4 and 8 of issue 19: a data set missing from the user's dataset_info.json but bundled with tunelab
comes from the bundle (one log line names the file); data messages suggest the likely fix: `formatting:
sharegpt` for a conversation entry without it (seed 003), the `tags` mapping for the roles seen (seed 001)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from _seedkit import run, write_seed_000_data

from tunelab.config.data_args import DataArguments
from tunelab.data.dataset_info import bundled_data_dir
from tunelab.data.loader import load_examples

HUMAN_GPT_ROWS = [{"conversations": [{"from": "human", "value": "第一天白天拉了4-5次后来每天拉2-3次"},
                                     {"from": "gpt", "value": "根据描述，建议及时就医。"}], "system": " ", "tools": " "}]


def test_bundled_identity_next_to_the_users_fintech(tmp_path, caplog):
    write_seed_000_data(tmp_path)
    with caplog.at_level(logging.INFO, logger="tunelab"):
        examples = load_examples(DataArguments(dataset="fintech,identity", dataset_dir="data"), "sft")
    bundled = json.loads((bundled_data_dir() / "identity.json").read_text(encoding="utf-8"))
    assert len(examples) == 4 + len(bundled)
    assert examples[4].messages[0].content == bundled[0]["instruction"]
    line = (f"data set identity: not in data/dataset_info.json; using tunelab's bundled copy "
            f"{bundled_data_dir() / 'identity.json'}")
    assert caplog.text.count(line) == 1


def test_check_of_seed_000_finds_identity(tmp_path, capsys, tiny_qwen):
    write_seed_000_data(tmp_path)
    result = run(capsys, "check", "--dataset", "fintech,identity", "--model_name_or_path", tiny_qwen,
                 "--template", "qwen")
    assert result.code == 0, result.err
    assert result.err.count("data set identity: not in data/dataset_info.json; using tunelab's bundled copy") == 1


def test_the_users_own_entry_wins_over_the_bundle(tmp_path):
    data = write_seed_000_data(tmp_path)
    info = json.loads((data / "dataset_info.json").read_text())
    info["identity"] = {"file_name": "my_identity.json"}
    (data / "dataset_info.json").write_text(json.dumps(info))
    (data / "my_identity.json").write_text(json.dumps([{"instruction": "你是谁？", "input": "", "output": "我是小金。"}],
                                                      ensure_ascii=False))
    (example,) = load_examples(DataArguments(dataset="identity", dataset_dir="data"), "sft")
    assert example.messages[1].content == "我是小金。"


def test_a_name_in_neither_lists_both(tmp_path, capsys):
    write_seed_000_data(tmp_path)
    result = run(capsys, "check", "--dataset", "identiti", "--portable")
    assert result.code == 2
    assert result.error.startswith("unknown data set 'identiti': it is not registered in data/dataset_info.json. "
                                   "Did you mean: identity? Registered: fintech; bundled with tunelab: alpaca_en_demo,")


def test_a_registered_file_that_is_missing(tmp_path, capsys):
    data = write_seed_000_data(tmp_path)
    (data / "fintech.json").unlink()
    result = run(capsys, "check", "--dataset", "fintech", "--portable")
    assert result.code == 2
    assert result.error == (f"data set 'fintech': {Path('data') / 'fintech.json'} does not exist "
                            f"({Path('data') / 'dataset_info.json'} names it); put the file there or fix the entry's "
                            "file_name.")


def test_conversation_entry_without_formatting_names_the_fix(tmp_path, capsys):
    """Seed 003's first sharegpt snippet: columns.messages and tags, but no "formatting"."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "medical_treatment.json").write_text(json.dumps(HUMAN_GPT_ROWS, ensure_ascii=False))
    (data / "dataset_info.json").write_text(json.dumps({"medical_treatment": {
        "file_name": "medical_treatment.json",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}}))
    result = run(capsys, "data", "check", "medical_treatment")
    assert result.code == 2
    assert result.error == ("data/dataset_info.json: data set 'medical_treatment': has columns.messages and "
                            'tags, which conversation data uses, but no "formatting", so it would be read as alpaca '
                            '(the default); add "formatting": "sharegpt" to the entry.')
    assert run(capsys, "check", "--dataset", "medical_treatment", "--portable").error == result.error


def test_wrong_role_tags_name_the_tags_mapping(tmp_path, capsys):
    """Seed 001's snippet registers user_tag: user / assistant_tag: assistant; the data says human / gpt."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "telechat.json").write_text(json.dumps(HUMAN_GPT_ROWS * 2, ensure_ascii=False))
    (data / "dataset_info.json").write_text(json.dumps({"telechat": {
        "file_name": "telechat.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"}}}))
    result = run(capsys, "data", "check", "telechat")
    assert result.code == 1
    lines = result.out.splitlines()
    hint = ("; this row's roles are 'human', 'gpt': map them with \"tags\": {\"user_tag\": \"human\", "
            "\"assistant_tag\": \"gpt\"} in data set 'telechat' of dataset_info.json")
    assert ("data/telechat.json:1: conversations[0].from: unknown role 'human' (expected one of 'user', "
            f"'assistant', 'observation', 'function_call', 'system'){hint}") in lines
    second = next(line for line in lines if line.startswith("data/telechat.json:1: conversations[1].from"))
    assert second.endswith("unknown role 'gpt' (expected one of 'user', 'assistant', 'observation', "
                           "'function_call', 'system')")  # the fix is said once per row
