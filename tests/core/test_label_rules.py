"""The label rule of `tunelab.data.encode`: which tokens of an encoded example are trained, per data kind.

Prompt tokens are -100; each assistant turn's content and end-of-turn token are trained;
`train_on_prompt` trains everything; `mask_history` (and every preference pair and KTO example)
trains the last answer only. A character-level tokenizer (one token per character, one per special
marker) keeps these tests free of tokenizer files and fast; tests/templates checks the same rules on
the real Qwen tokenizers.
"""

from __future__ import annotations

import json
import re

import pytest

from tunelab.config.stages import DataKind
from tunelab.data.conversation import Example, Message, Role
from tunelab.data.encode import (
    IGNORE_INDEX,
    EncodeOptions,
    encode_kto,
    encode_pairwise,
    encode_supervised,
    labels_of,
    trained_tokens,
)
from tunelab.data.encode_tokens import Token
from tunelab.data.templates import get_template
from tunelab.errors import UserError

X = IGNORE_INDEX
U, A, F = Role.USER, Role.ASSISTANT, Role.FUNCTION
CHATML = get_template("chatml")
QWEN3 = get_template("qwen3")
TOOLS = json.dumps([{"name": "lookup", "description": "find a word", "parameters": {}}])


class CharTokenizer:
    """One token per character (id 1000 + code point), one per special marker; a slow tokenizer, so
    encoding goes segment by segment."""

    is_fast = False
    bos_token = None
    eos_token = "</s>"
    eos_token_id = 3
    SPECIAL = ("<|im_start|>", "<|im_end|>", "</s>", "<think>", "</think>")
    PATTERN = re.compile("|".join(re.escape(s) for s in SPECIAL) + "|.", re.S)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.SPECIAL.index(p) + 1 if p in self.SPECIAL else 1000 + ord(p) for p in self.PATTERN.findall(text)]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.SPECIAL[i - 1] if i < 1000 else chr(i - 1000) for i in ids)


TOK = CharTokenizer()


def conv(*turns: tuple[Role, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in turns)


def text(ids: list[int]) -> str:
    return TOK.decode(ids)


def trained(ids: list[int], labels: list[int]) -> list[str]:
    """The trained spans as text; every trained label must be its own token."""
    assert len(ids) == len(labels)
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label != X:
            assert label == token
            current.append(token)
        elif current:
            spans.append(text(current))
            current = []
    return spans + ([text(current)] if current else [])


def check_supervised(encoded: dict) -> list[str]:
    assert set(encoded) == {"input_ids", "attention_mask", "labels"}
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])
    return trained(encoded["input_ids"], encoded["labels"])


SINGLE = conv((U, "Hello"), (A, "Hi"))
MULTI = conv((U, "Hello"), (A, "Hi"), (U, "Q"), (A, "Yes"))
MULTI_TEXT = ("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>\n"
              "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nYes<|im_end|>\n")
LAST_TURN_TEXT = "\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nYes<|im_end|>\n"  # 26 tokens


# -- labels_of on hand-made tokens ----------------------------------------------------------------------


def tokens() -> list[Token]:
    """turn 0: prompt 10, answer 11 (trained); turn 1: prompt 12, a think block 13 kept as context
    (response, not trained), answer 14 (trained); turn 2: separator 15."""
    def tok(i, turn, response, is_trained):
        return Token(i, turn, response, is_trained, True, -i)
    return [tok(10, 0, False, False), tok(11, 0, True, True), tok(12, 1, False, False), tok(13, 1, True, False),
            tok(14, 1, True, True), tok(15, 2, False, False)]


def test_labels_train_every_trained_token_and_mask_the_rest():
    assert labels_of(tokens(), train_on_prompt=False, last_turn_only=False) == [X, 11, X, X, 14, X]


def test_labels_of_the_last_turn_only_skip_the_text_after_the_last_answer():
    assert labels_of(tokens(), train_on_prompt=False, last_turn_only=True) == [X, X, X, X, 14, X]


def test_labels_with_train_on_prompt_train_every_token():
    assert labels_of(tokens(), train_on_prompt=True, last_turn_only=False) == [10, 11, 12, 13, 14, 15]
    assert labels_of(tokens(), train_on_prompt=True, last_turn_only=True) == [10, 11, 12, 13, 14, 15]


def test_labels_without_an_answer_train_nothing():
    prompt_only = [Token(1, 0, False, False, True, -1), Token(2, 0, False, False, False, 0)]
    assert labels_of(prompt_only, train_on_prompt=False, last_turn_only=True) == [X, X]
    assert labels_of(prompt_only, train_on_prompt=False, last_turn_only=False) == [X, X]


# -- supervised ---------------------------------------------------------------------------------------


def test_supervised_trains_each_answer_and_its_end_of_turn():
    encoded = encode_supervised(TOK, CHATML, MULTI)
    assert text(encoded["input_ids"]) == MULTI_TEXT
    assert check_supervised(encoded) == ["Hi<|im_end|>", "Yes<|im_end|>"]


def test_supervised_mask_history_trains_the_last_answer_only():
    assert check_supervised(encode_supervised(TOK, CHATML, MULTI, mask_history=True)) == ["Yes<|im_end|>"]


def test_supervised_train_on_prompt_trains_everything():
    encoded = encode_supervised(TOK, CHATML, MULTI, train_on_prompt=True)
    assert encoded["labels"] == encoded["input_ids"]
    assert check_supervised(encoded) == [MULTI_TEXT]


def test_supervised_system_and_tools_go_into_the_prompt():
    with_system = encode_supervised(TOK, CHATML, SINGLE, system="Be brief.")
    assert text(with_system["input_ids"]).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    with_tools = encode_supervised(TOK, CHATML, SINGLE, tools=TOOLS)
    assert "Tool Name: lookup" in text(with_tools["input_ids"])
    assert check_supervised(with_system) == check_supervised(with_tools) == ["Hi<|im_end|>"]


def test_supervised_thinking_answer_trains_its_empty_think_block_unless_thinking_is_off():
    assert check_supervised(encode_supervised(TOK, QWEN3, SINGLE)) == ["<think>\n\n</think>\n\nHi<|im_end|>"]
    off = encode_supervised(TOK, QWEN3, SINGLE, enable_thinking=False)
    assert text(off["input_ids"]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\nHi<|im_end|>\n")
    assert check_supervised(off) == ["Hi<|im_end|>"]


def test_supervised_cutoff_defaults_to_2048_tokens():
    long = conv((U, "x" * 2100), (A, "Hi"))
    encoded = encode_supervised(TOK, CHATML, long)
    assert len(encoded["input_ids"]) == 2048 and check_supervised(encoded) == ["Hi<|im_end|>"]
    assert len(encode_supervised(TOK, CHATML, long, cutoff_len=100)["input_ids"]) == 100


def test_supervised_mask_history_keeps_the_last_turn_when_cutting():
    encoded = encode_supervised(TOK, CHATML, MULTI, cutoff_len=26, mask_history=True)
    assert text(encoded["input_ids"]) == LAST_TURN_TEXT
    assert check_supervised(encoded) == ["Yes<|im_end|>"]
    forward = encode_supervised(TOK, CHATML, MULTI, cutoff_len=26)  # without mask_history the first turn is kept
    assert text(forward["input_ids"]) == "<|im_start|>user\nHell<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>"


def test_supervised_may_end_with_a_tool_call_but_not_with_a_user_turn():
    encoded = encode_supervised(TOK, CHATML, conv((U, "Hello"), (F, '{"name": "lookup"}')))
    assert len(check_supervised(encoded)) == 1
    for messages in ((), conv((U, "Hello")), conv((U, "Hello"), (A, "Hi"), (U, "Q"))):
        with pytest.raises(UserError, match=r"^a supervised example must end with an assistant \(or function_call\) turn$"):
            encode_supervised(TOK, CHATML, messages)


# -- preference pairs ---------------------------------------------------------------------------------

PAIR = Example(messages=conv((U, "Hello")), chosen=Message(A, "Sure, gladly."), rejected=Message(A, "No."))
PAIR_KEYS = {f"{side}_{key}" for side in ("chosen", "rejected") for key in ("input_ids", "attention_mask", "labels")}


def sides(encoded: dict) -> dict[str, tuple[str, list[str]]]:
    """Per side: the text and the trained spans."""
    assert set(encoded) == PAIR_KEYS
    out = {}
    for side in ("chosen", "rejected"):
        ids = encoded[f"{side}_input_ids"]
        assert encoded[f"{side}_attention_mask"] == [1] * len(ids)
        out[side] = (text(ids), trained(ids, encoded[f"{side}_labels"]))
    return out


def test_pairwise_shares_the_prompt_and_trains_only_the_answers():
    got = sides(encode_pairwise(TOK, CHATML, PAIR))
    prompt = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    assert got == {"chosen": (prompt + "Sure, gladly.<|im_end|>\n", ["Sure, gladly.<|im_end|>"]),
                   "rejected": (prompt + "No.<|im_end|>\n", ["No.<|im_end|>"])}


def test_pairwise_trains_the_last_answer_only_and_everything_with_train_on_prompt():
    pair = Example(messages=MULTI[:3], chosen=Message(A, "Yes"), rejected=Message(A, "No"))
    got = sides(encode_pairwise(TOK, CHATML, pair))
    assert got["chosen"] == (MULTI_TEXT, ["Yes<|im_end|>"]) and got["rejected"][1] == ["No<|im_end|>"]
    everything = sides(encode_pairwise(TOK, CHATML, pair, options=EncodeOptions(train_on_prompt=True)))
    assert everything["chosen"] == (MULTI_TEXT, [MULTI_TEXT])


def test_pairwise_system_tools_and_thinking_reach_the_template():
    pair = Example(messages=PAIR.messages, chosen=PAIR.chosen, rejected=PAIR.rejected, system="Be brief.", tools=TOOLS)
    chosen_text = sides(encode_pairwise(TOK, CHATML, pair))["chosen"][0]
    assert chosen_text.startswith("<|im_start|>system\nBe brief.") and "Tool Name: lookup" in chosen_text
    thinking = sides(encode_pairwise(TOK, QWEN3, PAIR))
    assert thinking["rejected"][1] == ["<think>\n\n</think>\n\nNo.<|im_end|>"]
    off = sides(encode_pairwise(TOK, QWEN3, PAIR, options=EncodeOptions(enable_thinking=False)))
    assert off["rejected"][1] == ["No.<|im_end|>"] and off["rejected"][0].endswith("</think>\n\nNo.<|im_end|>\n")


def test_pairwise_truncation_gives_both_sides_the_same_prompt():
    """The shorter answer is cut as if it were as long as the longer one: the prompts stay equal."""
    pair = Example(messages=conv((U, "w" * 40)), chosen=Message(A, "c" * 30), rejected=Message(A, "rrr"))
    got = sides(encode_pairwise(TOK, CHATML, pair, options=EncodeOptions(cutoff_len=60)))
    # last turn first: the separator after the answer (1), then 59 prompt tokens (19 markup) and the 31-token
    # chosen answer share 59: (39, 20), so both prompts keep 20 w's; the cut chosen answer loses the separator
    prompt = "<|im_start|>user\n" + "w" * 20 + "<|im_end|>\n<|im_start|>assistant\n"
    assert got == {"chosen": (prompt + "c" * 20, ["c" * 20]),
                   "rejected": (prompt + "rrr<|im_end|>\n", ["rrr<|im_end|>"])}


def test_pairwise_truncation_keeps_the_last_turn_first():
    pair = Example(messages=MULTI[:3], chosen=Message(A, "Yes"), rejected=Message(A, "No"))
    got = sides(encode_pairwise(TOK, CHATML, pair, options=EncodeOptions(cutoff_len=26)))
    assert got["chosen"] == (LAST_TURN_TEXT, ["Yes<|im_end|>"])
    assert got["rejected"] == (LAST_TURN_TEXT.replace("Yes", "No"), ["No<|im_end|>"])


@pytest.mark.parametrize("missing", ["chosen", "rejected"])
def test_pairwise_needs_both_answers(missing):
    answers = {"chosen": PAIR.chosen, "rejected": PAIR.rejected, missing: None}
    with pytest.raises(UserError, match="^a preference example needs both 'chosen' and 'rejected'$"):
        encode_pairwise(TOK, CHATML, Example(messages=PAIR.messages, **answers))


def test_supervised_and_pairs_write_the_tokenizers_eos():
    """Templates that end answers with {{eos_token}} ("empty": the user text, then the answer and eos)."""
    empty = get_template("empty")
    encoded = encode_supervised(TOK, empty, SINGLE)
    assert text(encoded["input_ids"]) == "HelloHi</s>" and check_supervised(encoded) == ["Hi</s>"]
    got = sides(encode_pairwise(TOK, empty, PAIR))
    assert got == {"chosen": ("HelloSure, gladly.</s>", ["Sure, gladly.</s>"]), "rejected": ("HelloNo.</s>", ["No.</s>"])}



# -- KTO ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", [True, False])
def test_kto_trains_the_last_answer_only_and_keeps_its_tag(tag):
    encoded = encode_kto(TOK, CHATML, Example(messages=MULTI, kto_tag=tag))
    assert encoded["kto_tag"] is tag
    assert text(encoded["input_ids"]) == MULTI_TEXT
    assert trained(encoded["input_ids"], encoded["labels"]) == ["Yes<|im_end|>"]
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])


def test_kto_options_system_and_tools_reach_the_encoding():
    example = Example(messages=MULTI, kto_tag=True, system="Be brief.", tools=TOOLS)
    prompt = text(encode_kto(TOK, CHATML, example)["input_ids"])
    assert prompt.startswith("<|im_start|>system\nBe brief.") and "Tool Name: lookup" in prompt
    plain = Example(messages=MULTI, kto_tag=True)
    cut = encode_kto(TOK, CHATML, plain, options=EncodeOptions(cutoff_len=26))
    assert text(cut["input_ids"]) == LAST_TURN_TEXT  # the last turn is kept first
    everything = encode_kto(TOK, CHATML, plain, options=EncodeOptions(train_on_prompt=True))
    assert everything["labels"] == everything["input_ids"]
    thinking = Example(messages=SINGLE, kto_tag=False)
    on, off = (encode_kto(TOK, QWEN3, thinking, options=EncodeOptions(enable_thinking=flag)) for flag in (True, False))
    assert trained(on["input_ids"], on["labels"]) == ["<think>\n\n</think>\n\nHi<|im_end|>"]
    assert trained(off["input_ids"], off["labels"]) == ["Hi<|im_end|>"]


def test_kto_needs_a_tag():
    with pytest.raises(UserError, match="^a KTO example needs a boolean 'kto_tag'$"):
        encode_kto(TOK, CHATML, Example(messages=MULTI))


# -- counting trained tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [DataKind.TEXT, DataKind.CHAT, DataKind.KTO])
def test_trained_tokens_count_the_targets_after_position_zero(kind):
    assert trained_tokens({"labels": [5, 6, X, 8]}, kind) == 2  # position 0 is never a target
    assert trained_tokens({"labels": [5, X, X]}, kind) == 0
    assert trained_tokens({"labels": [X, 6, 7, 8]}, kind) == 3


def test_trained_tokens_of_a_pair_is_its_poorer_side():
    assert trained_tokens({"chosen_labels": [X, 1, 2, 3], "rejected_labels": [X, X, 4]}, DataKind.PAIR) == 1
    assert trained_tokens({"chosen_labels": [X, X, 4], "rejected_labels": [X, 1, 2, 3]}, DataKind.PAIR) == 1
    assert trained_tokens({"chosen_labels": [9, X, X], "rejected_labels": [X, 1, 2]}, DataKind.PAIR) == 0
    assert trained_tokens({"chosen_labels": [X, 1, 2, 3], "rejected_labels": [X, 4, X]}, DataKind.PAIR) == 1


def test_trained_tokens_of_a_prompt_is_none():
    assert trained_tokens({"input_ids": [1, 2], "labels": [3, 4]}, DataKind.PROMPT) is None
