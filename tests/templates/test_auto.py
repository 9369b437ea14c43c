"""`template: auto`: the tokenizer's own jinja, with assistant spans found by rendering."""

from __future__ import annotations

import logging

import pytest
from template_helpers import CONVERSATIONS, A, U, conv, load_tokenizer
from test_golden_labels import MULTI, TOOL_CONVERSATION, TOOLS

from tunelab.data.encode import encode_prompt, encode_supervised
from tunelab.data.templates import get_template
from tunelab.errors import UserError


@pytest.mark.parametrize("family,named", [("qwen2.5", "qwen"), ("qwen3", "qwen3")])
@pytest.mark.parametrize("case", ["single", "multi", "mask", "tools", "thinking", "nothink"])
def test_auto_equals_the_named_template(family: str, named: str, case: str) -> None:
    tokenizer = load_tokenizer(family)
    auto, template = get_template("auto", tokenizer), get_template(named)
    kwargs: dict = {}
    messages = conv((U, "Hello"), (A, "Hi there"))
    if case in ("multi", "mask"):
        messages = MULTI
        kwargs["mask_history"] = case == "mask"
    elif case == "tools":
        messages, kwargs["tools"] = TOOL_CONVERSATION, TOOLS
    elif case in ("thinking", "nothink"):
        messages = conv((U, "2+2?"), (A, "<think>\nadd\n</think>\n\n4"), (U, "3+3?"), (A, "<think>\nagain\n</think>\n\n6"))
        kwargs["enable_thinking"] = case == "thinking"
    assert encode_supervised(tokenizer, auto, messages, **kwargs) == encode_supervised(tokenizer, template, messages, **kwargs)


def test_auto_prompt_equals_apply_chat_template(qwen25_tokenizer) -> None:
    system, messages = CONVERSATIONS["single_system"]
    prompt = messages[:1]
    expected = qwen25_tokenizer.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": "Hello"}], add_generation_prompt=True, return_dict=False
    )
    assert encode_prompt(qwen25_tokenizer, get_template(None, qwen25_tokenizer), prompt, system=system) == list(expected)


def test_auto_trains_an_unknown_family(qwen25_tokenizer) -> None:
    """A made-up format no registry entry knows: spans are still found by rendering."""
    tokenizer = load_tokenizer("qwen2.5").__class__.from_pretrained(qwen25_tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m.role == 'user' %}<<U>> {{ m.content }}\n{% else %}<<B>> {{ m.content }} <|endoftext|>\n"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}<<B>>{% endif %}"
    )
    encoded = encode_supervised(tokenizer, get_template("auto", tokenizer), MULTI)
    trained = [t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100]
    assert tokenizer.decode(trained) == " Hi there <|endoftext|> I am Qwen <|endoftext|>"


def test_auto_without_chat_template_lists_the_named_templates(deepseek_tokenizer) -> None:
    with pytest.raises(UserError) as error:
        get_template("auto", deepseek_tokenizer)
    assert "has no chat template" in error.value.message
    assert "llama3" in error.value.message and "qwen3" in error.value.message


def test_the_template_used_is_logged(qwen25_tokenizer, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tunelab.data.templates"):
        get_template(None, qwen25_tokenizer)
        get_template("llama3")
    messages = [r.getMessage() for r in caplog.records if r.name == "tunelab.data.templates"]
    assert any("tokenizer's own chat template" in m for m in messages)
    assert any("named template 'llama3'" in m for m in messages)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UserError, match="Did you mean 'llama3'"):
        get_template("lama3")


def test_telechat_and_aliases_resolve() -> None:
    assert get_template("telechat").name == "telechat"
    assert get_template("telechat2").name == "telechat2"
    assert get_template("qwen2.5").name == "qwen"
