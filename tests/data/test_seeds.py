"""The dataset_info.json entries of the seed tutorials load with data shaped like theirs."""

from __future__ import annotations

import json

from _datafiles import register

from tunelab.config.data_args import DataArguments
from tunelab.data.conversation import Message, Role
from tunelab.data.loader import load_examples

U, A = Role.USER, Role.ASSISTANT

# seed 000: fintech alpaca with history, next to identity.
FINTECH_ENTRY = {"file_name": "fintech.json", "columns": {"prompt": "instruction", "query": "input",
                                                          "response": "output", "history": "history"}}  # fmt: skip
FINTECH_ROWS = [
    {"instruction": "什么是市盈率？", "input": "", "output": "市盈率是股价除以每股收益的比值。", "history": []},
    {"instruction": "那它高说明什么？", "input": "", "output": "通常说明市场对公司的增长预期较高。",
     "history": [["什么是市盈率？", "市盈率是股价除以每股收益的比值。"]]},
]  # fmt: skip
IDENTITY_ROWS = [{"instruction": "hi", "input": "", "output": "Hello! I am {{name}}, an AI assistant developed by {{author}}."}]

# seed 001: sharegpt with from/value tags and user/assistant role names.
SEED001_ENTRY = {"file_name": "telechat.json", "formatting": "sharegpt",
                 "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
                 "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"}}
SEED001_ROWS = [{"conversations": [{"from": "user", "value": "user instruction"},
                                   {"from": "assistant", "value": "model response"}],
                 "system": "system prompt (optional)", "tools": ""}]  # fmt: skip

# seed 003: the medical sharegpt set with human/gpt tags and " " system / tools.
MEDICAL_ENTRY = {"formatting": "sharegpt", "file_name": "medical_treatment.json",
                 "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
                 "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
MEDICAL_ROWS = [{"conversations": [{"from": "human", "value": "第一天白天拉了4-5次后来每天拉2-3次"},
                                   {"from": "gpt", "value": "根据描述，遇到孩子腹泻，家长一定要注意留取孩子大便标本去医院检查。"}],
                 "system": " ", "tools": " "}]  # fmt: skip


def test_seed_000_fintech_with_history_and_identity(data_dir):
    (data_dir / "fintech.json").write_text(json.dumps(FINTECH_ROWS, ensure_ascii=False, indent=2))
    (data_dir / "identity.json").write_text(json.dumps(IDENTITY_ROWS, ensure_ascii=False, indent=2))
    register(data_dir, {"fintech": FINTECH_ENTRY, "identity": {"file_name": "identity.json"}})
    args = DataArguments(dataset="fintech,identity", dataset_dir=str(data_dir), max_samples=1000)
    examples = load_examples(args, "sft")
    assert [e.messages for e in examples] == [
        (Message(U, "什么是市盈率？"), Message(A, "市盈率是股价除以每股收益的比值。")),
        (Message(U, "什么是市盈率？"), Message(A, "市盈率是股价除以每股收益的比值。"),
         Message(U, "那它高说明什么？"), Message(A, "通常说明市场对公司的增长预期较高。")),
        (Message(U, "hi"), Message(A, "Hello! I am {{name}}, an AI assistant developed by {{author}}.")),
    ]  # fmt: skip


def test_seed_001_sharegpt_user_assistant_tags(data_dir):
    (data_dir / "telechat.json").write_text(json.dumps(SEED001_ROWS))
    register(data_dir, {"telechat": SEED001_ENTRY})
    (example,) = load_examples(DataArguments(dataset="telechat", dataset_dir=str(data_dir)), "sft")
    assert example.messages == (Message(U, "user instruction"), Message(A, "model response"))
    assert example.system == "system prompt (optional)" and example.tools is None


def test_seed_003_medical_sharegpt(data_dir):
    (data_dir / "medical_treatment.json").write_text(json.dumps(MEDICAL_ROWS, ensure_ascii=False, indent=2))
    register(data_dir, {"medical_treatment": MEDICAL_ENTRY})
    (example,) = load_examples(DataArguments(dataset="medical_treatment", dataset_dir=str(data_dir)), "sft")
    assert example.messages[0] == Message(U, "第一天白天拉了4-5次后来每天拉2-3次")
    assert example.messages[1].role is A
    assert example.tools is None
