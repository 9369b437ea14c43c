"""Truncation, efficient eos, preference pairs, KTO, pre-training, prompts and stop tokens."""

from __future__ import annotations

import pytest
from template_helpers import A, U, conv

from tunelab.data.conversation import Example, Message, Role
from tunelab.data.encode import (
    IGNORE_INDEX,
    EncodeOptions,
    encode_example,
    encode_kto,
    encode_pairwise,
    encode_pretrain,
    encode_prompt,
    encode_supervised,
    stop_token_ids,
)
from tunelab.data.templates import get_template
from tunelab.errors import UserError

X = IGNORE_INDEX
LONG_QUESTION = " ".join(f"word{i}" for i in range(60))
LONG_ANSWER = " ".join(f"answer{i}" for i in range(60))


def test_cutoff_keeps_markup_and_cuts_prompt_content(qwen25_tokenizer) -> None:
    tok = qwen25_tokenizer
    template = get_template("qwen")
    full = encode_supervised(tok, template, conv((U, LONG_QUESTION), (A, "Short.")))
    cut = encode_supervised(tok, template, conv((U, LONG_QUESTION), (A, "Short.")), cutoff_len=60)
    assert len(full["input_ids"]) > 60 and len(cut["input_ids"]) == 60
    text = tok.decode(cut["input_ids"])
    assert text.startswith("<|im_start|>system\nYou are Qwen")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\nShort.<|im_end|>")  # header and answer survive
    assert tok.decode([t for t, label in zip(cut["input_ids"], cut["labels"]) if label != X]) == "Short.<|im_end|>"


def test_cutoff_shares_the_budget_between_long_prompt_and_long_answer(qwen25_tokenizer) -> None:
    tok = qwen25_tokenizer
    encoded = encode_supervised(tok, get_template("chatml"), conv((U, LONG_QUESTION), (A, LONG_ANSWER)), cutoff_len=100)
    assert len(encoded["input_ids"]) == 100
    trained = sum(label != X for label in encoded["labels"])
    assert 40 <= trained <= 60  # both halves of comparable length keep a proportional share
    assert tok.decode(encoded["input_ids"]).count("<|im_start|>assistant\n") == 1


def test_cutoff_never_splits_a_multi_token_header(qwen25_tokenizer) -> None:
    tok = qwen25_tokenizer
    template = get_template("llama3")  # headers are several tokens with the qwen vocabulary
    messages = conv((U, "Hello"), (A, "Hi"), (U, LONG_QUESTION), (A, LONG_ANSWER))
    for cutoff in range(20, 60):
        encoded = encode_supervised(tok, template, messages, cutoff_len=cutoff)
        text = tok.decode(encoded["input_ids"])
        assert len(encoded["input_ids"]) <= cutoff
        assert text.count("<|start_header_id|>") == text.count("<|end_header_id|>\n\n")


def test_mask_history_keeps_the_last_turn_under_cutoff(qwen25_tokenizer) -> None:
    tok = qwen25_tokenizer
    messages = conv((U, LONG_QUESTION), (A, LONG_ANSWER), (U, "Last?"), (A, "Yes."))
    encoded = encode_supervised(tok, get_template("chatml"), messages, cutoff_len=30, mask_history=True)
    assert tok.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != X]) == "Yes.<|im_end|>"


def test_efficient_eos_trains_next_role_token_and_final_eos(qwen25_tokenizer) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen25_tokenizer.name_or_path)  # eos <|im_end|>, plus GLM's role tokens
    tok.add_special_tokens({"additional_special_tokens": ["[gMASK]", "<sop>", "<|user|>", "<|assistant|>", "<|observation|>"]})
    messages = conv((U, "Hello"), (A, "Hi"), (U, "Bye"), (A, "Bye!"))
    encoded = encode_supervised(tok, get_template("glm4"), messages)
    text = tok.decode(encoded["input_ids"])
    assert text == "[gMASK]<sop><|user|>\nHello<|assistant|>\nHi<|user|>\nBye<|assistant|>\nBye!<|im_end|>"
    trained = tok.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != X])
    assert trained == "\nHi<|user|>\nBye!<|im_end|>"  # "<|user|>" ends the first answer, eos the last


PAIR = Example(
    messages=(Message(Role.USER, "Hello"),),
    chosen=Message(Role.ASSISTANT, "Hi, how can I help?"),
    rejected=Message(Role.ASSISTANT, "Go away."),
)


def test_pairwise_shares_the_prompt_and_trains_only_answers(qwen25_tokenizer) -> None:
    tok = qwen25_tokenizer
    encoded = encode_pairwise(tok, get_template("qwen"), PAIR)
    prompt = encode_prompt(tok, get_template("qwen"), PAIR.messages)
    for key, answer in (("chosen", "Hi, how can I help?"), ("rejected", "Go away.")):
        ids, labels = encoded[f"{key}_input_ids"], encoded[f"{key}_labels"]
        assert ids[: len(prompt)] == prompt
        assert labels[: len(prompt)] == [X] * len(prompt)
        assert tok.decode([t for t, label in zip(ids, labels) if label != X]) == answer + "<|im_end|>"


def test_pairwise_truncation_keeps_the_same_prompt(qwen25_tokenizer) -> None:
    tok = qwen25_tokenizer
    pair = Example(
        messages=(Message(Role.USER, LONG_QUESTION),),
        chosen=Message(Role.ASSISTANT, LONG_ANSWER),
        rejected=Message(Role.ASSISTANT, "No."),
    )
    encoded = encode_pairwise(tok, get_template("qwen"), pair, options=EncodeOptions(cutoff_len=80))
    chosen, rejected = encoded["chosen_input_ids"], encoded["rejected_input_ids"]
    assert len(chosen) <= 80 and len(rejected) <= 80
    prompt_len = encoded["rejected_labels"].index(next(label for label in encoded["rejected_labels"] if label != X))
    assert chosen[:prompt_len] == rejected[:prompt_len]
    # the cut answer lost its <|im_end|>, so the "\n" the template writes after it is gone too
    assert not tok.decode(chosen).endswith("\n") and tok.decode(rejected).endswith("No.<|im_end|>\n")


def test_kto_example_carries_its_tag(qwen25_tokenizer) -> None:
    example = Example(messages=(Message(Role.USER, "Hello"), Message(Role.ASSISTANT, "Hi")), kto_tag=False)
    encoded = encode_kto(qwen25_tokenizer, get_template("qwen"), example)
    assert encoded["kto_tag"] is False
    assert encoded["labels"][-3:] == [13048, 151645, X]  # "Hi<|im_end|>" trained, "\n" not
    with pytest.raises(UserError, match="kto_tag"):
        encode_kto(qwen25_tokenizer, get_template("qwen"), Example(messages=example.messages))


def test_pretraining_appends_end_of_text(qwen25_tokenizer) -> None:
    encoded = encode_pretrain(qwen25_tokenizer, get_template("qwen"), "Hello world")
    assert encoded["input_ids"] == [9707, 1879, 151643]  # Qwen documents end with <|endoftext|>
    assert encoded["labels"] == encoded["input_ids"]


def test_pretraining_adds_bos_once(deepseek_tokenizer) -> None:
    template = get_template("deepseek3")  # prefix holds the bos token
    encoded = encode_pretrain(deepseek_tokenizer, template, "Hello world")
    assert encoded["input_ids"] == [0, 19923, 2058, 1]
    again = encode_pretrain(deepseek_tokenizer, template, "<｜begin▁of▁sentence｜>Hello world")
    assert again["input_ids"] == [0, 19923, 2058, 1]


def test_stop_tokens(qwen25_tokenizer) -> None:
    assert stop_token_ids(qwen25_tokenizer, get_template("qwen")) == [151645]
    assert stop_token_ids(qwen25_tokenizer, get_template("empty")) == [151645]


def test_encode_example_dispatches_by_stage(qwen25_tokenizer) -> None:
    template = get_template("qwen")
    assert set(encode_example(qwen25_tokenizer, template, PAIR, "dpo")) >= {"chosen_input_ids", "rejected_labels"}
    sft = encode_example(qwen25_tokenizer, template, Example(messages=(*PAIR.messages, PAIR.chosen)), "sft")
    assert set(sft) == {"input_ids", "attention_mask", "labels"}
    ppo = encode_example(qwen25_tokenizer, template, Example(messages=(*PAIR.messages, PAIR.chosen)), "ppo")
    assert ppo["input_ids"] == encode_prompt(qwen25_tokenizer, template, PAIR.messages)
    assert qwen25_tokenizer.decode(ppo["labels"]) == "Hi, how can I help?<|im_end|>"
    assert encode_example(qwen25_tokenizer, template, Example(text="Hello world"), "pt")["input_ids"][-1] == 151643
    with pytest.raises(UserError, match="unknown stage"):
        encode_example(qwen25_tokenizer, template, PAIR, "xyz")
