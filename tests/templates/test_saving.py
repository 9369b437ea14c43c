"""Saved tokenizers keep their template: the original jinja, or one that renders like tunelab."""

from __future__ import annotations

import pytest
from template_helpers import CONVERSATIONS, GENERATION, OBS, A, U, conv, load_tokenizer

from tunelab.data.templates import SpecialTokens, chat_template_for_saving, get_template, list_templates
from tunelab.data.templates.jinja import render_jinja, to_hf_messages
from tunelab.data.templates.saving import prepare_tokenizer_for_saving
from tunelab.errors import UserError

TOKENS = SpecialTokens(bos="<s>", eos="</s>")
CASES = {**{k: (v, False) for k, v in CONVERSATIONS.items()}, **{k: (v, True) for k, v in GENERATION.items()}}
CASES["tool_result"] = ((None, conv((U, "hi"), (A, "calling"), (OBS, "42"), (A, "It is 42."))), False)


class _Tokens:
    """The bos / eos a tokenizer hands a named official jinja (`get_template(name, tokenizer)`)."""

    bos_token, eos_token = "<s>", "</s>"
    special_tokens_map = {"bos_token": "<s>", "eos_token": "</s>"}


@pytest.mark.parametrize("name", [t.name for t in list_templates() if t.thinking is None])
@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_jinja_renders_like_tunelab(name: str, case: str) -> None:
    template = get_template(name, _Tokens())
    (system, messages), generation = CASES[case]
    if getattr(template, "content_parts", False):
        pytest.skip("this official jinja reads only lists of content parts (as its processor passes them)")
    jinja = chat_template_for_saving(object(), template)
    try:
        expected = template.render_text(messages, system=system, tokens=TOKENS, add_generation_prompt=generation)
    except UserError:  # an official jinja that refuses the case (a tool result with no tool call before it)
        pytest.skip("the official template refuses this conversation")
    rendered = render_jinja(
        jinja, to_hf_messages(messages, system), special_tokens={"bos_token": "<s>", "eos_token": "</s>"},
        add_generation_prompt=generation, **({"enable_thinking": True} if getattr(template, "thinking_switch", False) else {}),
    )
    assert rendered == expected


def test_tokenizer_with_a_template_keeps_it(qwen25_tokenizer) -> None:
    assert chat_template_for_saving(qwen25_tokenizer, get_template("chatml")) == qwen25_tokenizer.chat_template


def test_saved_and_reloaded_tokenizer_renders_the_same_prompt(tmp_path, qwen25_tokenizer) -> None:
    from transformers import AutoTokenizer

    original = load_tokenizer("qwen2.5")
    prepare_tokenizer_for_saving(original, get_template("qwen")).save_pretrained(tmp_path / "qwen")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "qwen")
    messages = [{"role": "user", "content": "Hello"}]
    assert reloaded.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        qwen25_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    )


def test_tokenizer_without_a_template_is_saved_with_the_named_one(tmp_path, deepseek_tokenizer) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(deepseek_tokenizer.name_or_path)
    template = get_template("deepseek")
    prepare_tokenizer_for_saving(tokenizer, template).save_pretrained(tmp_path / "ds")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "ds")
    system, messages = CONVERSATIONS["multi"]
    expected = template.render_text(messages, system=system, tokens=SpecialTokens.from_tokenizer(reloaded))
    assert reloaded.apply_chat_template(to_hf_messages(messages, system), tokenize=False) == expected
