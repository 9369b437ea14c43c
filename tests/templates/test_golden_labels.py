"""Golden tests: the exact ids and labels of typical examples with the real Qwen tokenizers.

If one of these changes, what models learn changes: update only with a reason in the commit.
"""

from __future__ import annotations

import json

import pytest
from template_helpers import OBS, A, F, U, conv

from tunelab.data.encode import IGNORE_INDEX, encode_supervised
from tunelab.data.templates import get_template

X = IGNORE_INDEX
QWEN_SYSTEM_IDS = [151644, 8948, 198, 2610, 525, 1207, 16948, 11, 3465, 553, 54364, 14817, 13, 1446, 525, 264, 10950, 17847, 13, 151645, 198]
HELLO_IDS = [151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198]  # <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n
HI_THERE = [13048, 1052, 151645]  # "Hi there<|im_end|>"
WHO_IDS = [198, 151644, 872, 198, 15191, 525, 498, 151645, 198, 151644, 77091, 198]  # \n + user turn + header
I_AM_QWEN = [40, 1079, 1207, 16948, 151645]
MULTI = conv((U, "Hello"), (A, "Hi there"), (U, "Who are you"), (A, "I am Qwen"))


def trained_text(tokenizer, encoded) -> list[str]:
    spans, current = [], []
    for token, label in zip(encoded["input_ids"], encoded["labels"]):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans


def test_single_turn(qwen25_tokenizer) -> None:
    encoded = encode_supervised(qwen25_tokenizer, get_template("qwen"), conv((U, "Hello"), (A, "Hi there")))
    assert encoded["input_ids"] == QWEN_SYSTEM_IDS + HELLO_IDS + HI_THERE + [198]
    assert encoded["labels"] == [X] * (len(QWEN_SYSTEM_IDS) + len(HELLO_IDS)) + HI_THERE + [X]
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])


def test_multi_turn_trains_every_answer(qwen25_tokenizer) -> None:
    encoded = encode_supervised(qwen25_tokenizer, get_template("qwen"), MULTI)
    assert encoded["input_ids"] == QWEN_SYSTEM_IDS + HELLO_IDS + HI_THERE + WHO_IDS + I_AM_QWEN + [198]
    assert encoded["labels"] == (
        [X] * (len(QWEN_SYSTEM_IDS) + len(HELLO_IDS)) + HI_THERE + [X] * len(WHO_IDS) + I_AM_QWEN + [X]
    )


def test_mask_history_trains_the_last_answer_only(qwen25_tokenizer) -> None:
    encoded = encode_supervised(qwen25_tokenizer, get_template("qwen"), MULTI, mask_history=True)
    prefix = len(QWEN_SYSTEM_IDS) + len(HELLO_IDS) + len(HI_THERE) + len(WHO_IDS)
    assert encoded["labels"] == [X] * prefix + I_AM_QWEN + [X]


def test_train_on_prompt_trains_everything(qwen25_tokenizer) -> None:
    encoded = encode_supervised(qwen25_tokenizer, get_template("qwen"), MULTI, train_on_prompt=True)
    assert encoded["labels"] == encoded["input_ids"]


def test_system_prompt_replaces_the_default(qwen25_tokenizer) -> None:
    encoded = encode_supervised(
        qwen25_tokenizer, get_template("qwen"), conv((U, "Hello"), (A, "Hi there")), system="Be brief."
    )
    assert qwen25_tokenizer.decode(encoded["input_ids"][:8]) == "<|im_start|>system\nBe brief.<|im_end|>\n"
    assert trained_text(qwen25_tokenizer, encoded) == ["Hi there<|im_end|>"]


def test_default_system_override(qwen25_tokenizer) -> None:
    template = get_template("qwen", default_system="Answer in French.")
    encoded = encode_supervised(qwen25_tokenizer, template, conv((U, "Hello"), (A, "Bonjour")))
    assert qwen25_tokenizer.decode(encoded["input_ids"]).startswith("<|im_start|>system\nAnswer in French.<|im_end|>")


THINK_PREFIX = [151644, 872, 198, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198]  # user "2+2?" + header
EMPTY_THINK = [151667, 271, 151668, 271]  # <think>\n\n</think>\n\n


def test_thinking_answer_is_trained_with_its_reasoning(qwen3_tokenizer) -> None:
    messages = conv((U, "2+2?"), (A, "<think>\nadd them\n</think>\n\n4"))
    encoded = encode_supervised(qwen3_tokenizer, get_template("qwen3"), messages)
    answer = [151667, 198, 718, 1105, 198, 151668, 271, 19, 151645]
    assert encoded["input_ids"] == THINK_PREFIX + answer + [198]
    assert encoded["labels"] == [X] * len(THINK_PREFIX) + answer + [X]


def test_answer_without_reasoning_gets_a_trained_empty_think_block(qwen3_tokenizer) -> None:
    encoded = encode_supervised(qwen3_tokenizer, get_template("qwen3"), conv((U, "2+2?"), (A, "4")))
    assert encoded["input_ids"] == THINK_PREFIX + EMPTY_THINK + [19, 151645, 198]
    assert encoded["labels"] == [X] * len(THINK_PREFIX) + EMPTY_THINK + [19, 151645, X]


@pytest.mark.parametrize("answer", ["4", "<think>\nadd them\n</think>\n\n4"])
def test_enable_thinking_off_puts_an_empty_block_in_the_prompt(qwen3_tokenizer, answer: str) -> None:
    encoded = encode_supervised(
        qwen3_tokenizer, get_template("qwen3"), conv((U, "2+2?"), (A, answer)), enable_thinking=False
    )
    assert encoded["input_ids"] == THINK_PREFIX + EMPTY_THINK + [19, 151645, 198]
    assert encoded["labels"] == [X] * (len(THINK_PREFIX) + len(EMPTY_THINK)) + [19, 151645, X]


def test_reasoning_of_earlier_turns_is_dropped_and_not_trained(qwen3_tokenizer) -> None:
    messages = conv(
        (U, "2+2?"), (A, "<think>\nadd\n</think>\n\n4"), (U, "3+3?"), (A, "<think>\nadd again\n</think>\n\n6")
    )
    encoded = encode_supervised(qwen3_tokenizer, get_template("qwen3"), messages)
    text = qwen3_tokenizer.decode(encoded["input_ids"])
    assert "<|im_start|>assistant\n4<|im_end|>" in text  # history as the official template writes it
    assert trained_text(qwen3_tokenizer, encoded) == ["<think>\nadd again\n</think>\n\n6<|im_end|>"]


def test_qwen3_nothink_has_no_think_block(qwen3_tokenizer) -> None:
    encoded = encode_supervised(qwen3_tokenizer, get_template("qwen3_nothink"), conv((U, "2+2?"), (A, "4")))
    assert encoded["input_ids"] == THINK_PREFIX + [19, 151645, 198]
    assert encoded["labels"] == [X] * len(THINK_PREFIX) + [19, 151645, X]


TOOLS = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "Get weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
)
TOOL_CONVERSATION = conv(
    (U, "Weather in Paris?"),
    (F, json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})),
    (OBS, '{"temp": 20}'),
    (A, "It is 20 degrees."),
)


def test_tool_call_and_answer_are_trained_tool_result_is_not(qwen25_tokenizer) -> None:
    encoded = encode_supervised(qwen25_tokenizer, get_template("qwen"), TOOL_CONVERSATION, tools=TOOLS)
    assert trained_text(qwen25_tokenizer, encoded) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
        "It is 20 degrees.<|im_end|>",
    ]
    call_ids = [151657, 198, 4913, 606, 788, 330, 455, 69364, 497, 330, 16370, 788, 5212, 8926, 788, 330, 59604, 95642, 151658, 151645]
    start = encoded["labels"].index(151657)
    assert encoded["labels"][start : start + len(call_ids)] == call_ids
    text = qwen25_tokenizer.decode(encoded["input_ids"])
    assert "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response><|im_end|>" in text
    assert '{"type": "function", "function": {"name": "get_weather"' in text


def test_qwen3_tool_turn_after_the_query_is_context_without_reasoning(qwen3_tokenizer) -> None:
    encoded = encode_supervised(qwen3_tokenizer, get_template("qwen3"), TOOL_CONVERSATION, tools=TOOLS)
    assert trained_text(qwen3_tokenizer, encoded) == ["<think>\n\n</think>\n\nIt is 20 degrees.<|im_end|>"]
