"""dataset_info.json: the anchor's defaults, clear errors, hub sources offline, and the bundled data."""

from __future__ import annotations

import json
import logging

import pytest
from _datafiles import register

from tunelab.config.data_args import DataArguments
from tunelab.data.dataset_info import bundled_data_dir, parse_entry, resolve_dataset_dir
from tunelab.data.loader import load_examples
from tunelab.errors import UserError


def test_anchor_defaults(tmp_path):
    alpaca = parse_entry("a", {"file_name": "a.json"}, tmp_path)
    assert alpaca.load_from == "file" and alpaca.path == str(tmp_path / "a.json")
    assert alpaca.columns == {"prompt": "instruction", "query": "input", "response": "output"}
    assert alpaca.tags["role_tag"] == "from" and alpaca.tags["user_tag"] == "human"
    sharegpt = parse_entry("s", {"file_name": "s.json", "formatting": "sharegpt",
                                 "tags": {"user_tag": "user"}}, tmp_path)  # fmt: skip
    assert sharegpt.columns == {"messages": "conversations"}
    assert sharegpt.tags == {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "gpt",
                             "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
    openai = parse_entry("o", {"file_name": "o.json", "formatting": "openai"}, tmp_path)
    assert (openai.tags["role_tag"], openai.tags["content_tag"], openai.tags["observation_tag"]) == ("role", "content", "tool")
    hub = parse_entry("h", {"hf_hub_url": "org/set", "ms_hub_url": "org/ms", "subset": "x", "split": "test"}, tmp_path)
    assert (hub.load_from, hub.path, hub.subset, hub.split) == ("hf_hub", "org/set", "x", "test")


def test_modelscope_is_chosen_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    assert parse_entry("h", {"hf_hub_url": "org/set", "ms_hub_url": "org/ms"}, tmp_path).load_from == "ms_hub"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"file_nme": "a.json"}, "unknown key 'file_nme' (did you mean 'file_name'?)"),
        ({"file_name": "a.json", "formatting": "chatml"}, "formatting must be one of alpaca, sharegpt, openai"),
        ({"file_name": "a.json", "columns": {"promt": "q"}}, "unknown column 'promt' (did you mean 'prompt'?)"),
        ({"file_name": "a.json", "tags": {"role": "r"}}, "unknown tag 'role'"),
        ({"formatting": "alpaca"}, "needs one of file_name, hf_hub_url"),
    ],
)
def test_entry_errors_name_the_key(tmp_path, entry, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_entry("bad", entry, tmp_path)


def test_hub_source_offline_fails_with_one_clear_message(data_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    register(data_dir, {"remote": {"hf_hub_url": "tunelab-tests/not-a-real-set"}})
    with pytest.raises(UserError) as info:
        load_examples(DataArguments(dataset="remote", dataset_dir=str(data_dir)), "sft")
    message = info.value.message
    assert message.startswith("data set 'remote': cannot load hf_hub_url 'tunelab-tests/not-a-real-set'")
    assert "offline" in message


def test_stage_must_fit_the_data_set(data_dir):
    (data_dir / "p.json").write_text(json.dumps([{"instruction": "q", "chosen": "a", "rejected": "b"}]))
    (data_dir / "t.json").write_text(json.dumps([{"text": "plain"}]))
    register(data_dir, {"pref": {"file_name": "p.json", "ranking": True,
                                 "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
                        "text": {"file_name": "t.json", "columns": {"prompt": "text"}}})  # fmt: skip
    with pytest.raises(UserError, match="is preference data"):
        load_examples(DataArguments(dataset="pref", dataset_dir=str(data_dir)), "sft")
    with pytest.raises(UserError, match="has no response column.*use stage pt"):
        load_examples(DataArguments(dataset="text", dataset_dir=str(data_dir)), "sft")
    assert len(load_examples(DataArguments(dataset="pref", dataset_dir=str(data_dir)), "rm")) == 1


def test_bundled_data_is_used_when_data_folder_is_absent(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="tunelab.data"):
        assert resolve_dataset_dir("data") == bundled_data_dir()
    assert "using tunelab's bundled data" in caplog.text
    (tmp_path / "data").mkdir()
    assert str(resolve_dataset_dir("data")) == "data"


BUNDLED = {
    "identity": ("sft", 80), "alpaca_en_demo": ("sft", None), "alpaca_zh_demo": ("sft", None),
    "sharegpt_demo": ("sft", None), "toolcall_demo": ("sft", None), "dpo_en_demo": ("dpo", None),
    "dpo_zh_demo": ("dpo", None), "kto_en_demo": ("kto", None), "c4_demo": ("pt", None),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_data_sets_load_clean(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    stage, count = BUNDLED[name]
    examples = load_examples(DataArguments(dataset=name), stage)
    assert len(examples) >= (count or 6)
    if count:
        assert len(examples) == count
    info = json.loads((bundled_data_dir() / "dataset_info.json").read_text())
    assert (bundled_data_dir() / info[name]["file_name"]).stat().st_size < 1_000_000


def test_bundled_identity_is_bilingual_with_placeholders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    examples = load_examples(DataArguments(dataset="identity"), "sft")
    answers = [e.messages[-1].content for e in examples]
    assert all("{{name}}" in a and "{{author}}" in a for a in answers)
    assert any(e.messages[0].content == "你是谁？" for e in examples)
    assert any(e.messages[0].content == "Who are you?" for e in examples)


def test_bundled_multi_turn_and_tool_calls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    share = load_examples(DataArguments(dataset="sharegpt_demo"), "sft")
    assert max(len(e.messages) for e in share) >= 6
    tools = load_examples(DataArguments(dataset="toolcall_demo"), "sft")
    assert any(m.role.value == "function_call" for e in tools for m in e.messages) and all(e.tools for e in tools)
