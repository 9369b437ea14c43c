"""Reasoning families: `enable_thinking` on and off renders the same in training, inference and the saved template.

LLaMA-Factory users report stray `<think>` after training or merging (LLaMA-Factory #8832, #9392,
#9765): the prompt a model was trained on and the one it is served with differ in the think block.
For each reasoning family and each setting, three renderings must agree: the training text of a
conversation, the generation prompt inference sends, and the chat template tunelab saves with a
model whose tokenizer has none (what any other tool will render).
"""

from __future__ import annotations

import pytest
from template_helpers import A, U, conv

from tunelab.data.templates import chat_template_for_saving, get_template, list_templates
from tunelab.data.templates.auto import _reasoning_key, _with_reasoning
from tunelab.data.templates.jinja import render_jinja, to_hf_messages
from tunelab.errors import UserError

FAMILIES = ["qwen3", "qwen3_5", "deepseekr1", "glm4_moe", "gpt_oss"]
SYSTEM = "You are terse."
WITH_REASONING = conv((U, "Hi"), (A, "<think>\nA greeting.\n</think>\n\nHello!"), (U, "2+2?"),
                      (A, "<think>\nAdd two and two.\n</think>\n\n4"))
WITHOUT_REASONING = conv((U, "Hi"), (A, "Hello!"), (U, "2+2?"), (A, "4"))


class _Tokenizer:
    """The special tokens of a tokenizer that ships no chat template (so the named one is saved)."""

    bos_token, eos_token = "<s>", "</s>"
    special_tokens_map = {"bos_token": "<s>", "eos_token": "</s>"}
    chat_template = None


def _saved_render(template, messages, *, generation: bool, thinking: bool) -> str:
    """What another tool renders with the saved template (reasoning passed the way the template reads it)."""
    jinja = chat_template_for_saving(_Tokenizer(), template)
    hf = to_hf_messages(messages, SYSTEM)
    key = _reasoning_key(jinja)
    if key:
        hf = [_with_reasoning(m, key) if m["role"] == "assistant" else m for m in hf]
    return render_jinja(jinja, hf, special_tokens=_Tokenizer.special_tokens_map, add_generation_prompt=generation,
                        enable_thinking=thinking)


def _cases():
    for name in FAMILIES:
        for thinking in (True, False):
            yield pytest.param(name, thinking, id=f"{name}-thinking_{'on' if thinking else 'off'}")


@pytest.mark.parametrize(("name", "thinking"), list(_cases()))
def test_training_inference_and_saved_template_agree(name: str, thinking: bool) -> None:
    template = get_template(name, _Tokenizer())
    if name == "deepseekr1" and not thinking:
        with pytest.raises(UserError, match="enable_thinking: false cannot be used with template deepseekr1"):
            template.render_text(WITH_REASONING, system=SYSTEM, enable_thinking=False)
        return
    from tunelab.data.templates import SpecialTokens

    tokens = SpecialTokens(bos="<s>", eos="</s>")
    messages = WITH_REASONING if thinking else WITHOUT_REASONING
    segments = template.render(messages, system=SYSTEM, tokens=tokens, enable_thinking=thinking)
    training = "".join(s.text for s in segments)
    inference = template.render_text(messages[:-1], system=SYSTEM, tokens=tokens, add_generation_prompt=True,
                                     enable_thinking=thinking)
    # 1. the model is trained on its last answer after exactly the prompt inference will send
    assert training.startswith(inference), (training, inference)
    last_turn = max(s.turn for s in segments if s.response)
    last = "".join(s.text for s in segments if s.response and s.trainable and s.turn == last_turn)
    assert "4" in last
    # 2. reasoning is trained when thinking is on, and no think text is trained when it is off
    assert ("Add two and two." in last) is thinking
    if not thinking:
        trained = "".join(s.text for s in segments if s.response and s.trainable)
        assert "<think>" not in trained and "A greeting" not in training
    # 3. the saved template renders the same prompt and the same conversation
    assert _saved_render(template, messages[:-1], generation=True, thinking=thinking) == inference
    if thinking and name == "deepseekr1":
        # R1's own template drops the reasoning of every answer it is shown (only the model writes it);
        # without reasoning in the data, training and the saved template agree text for text
        assert _saved_render(template, WITHOUT_REASONING, generation=False, thinking=True) == template.render_text(
            WITHOUT_REASONING, system=SYSTEM, tokens=tokens)
    else:
        assert _saved_render(template, messages, generation=False, thinking=thinking) == training


@pytest.mark.parametrize("name", [t.name for t in list_templates() if t.thinking is not None and t.thinking.every_turn])
@pytest.mark.parametrize("thinking", [True, False])
def test_anchor_reasoning_formats_are_saved_with_their_think_blocks(name: str, thinking: bool) -> None:
    """LLaMA-Factory's reasoning formats write a block before every answer; the saved jinja writes the same."""
    from tunelab.data.templates import SpecialTokens

    template = get_template(name)
    tokens = SpecialTokens(bos="<s>", eos="</s>")
    opening, closing = template.thinking.open, template.thinking.close
    messages = conv((U, "Hi"), (A, f"{opening}\nA greeting.\n{closing}\n\nHello!"), (U, "2+2?"), (A, "4"))
    jinja = chat_template_for_saving(_Tokenizer(), template)
    for generation, shown in ((False, messages), (True, messages[:-1])):
        expected = template.render_text(shown, system=SYSTEM, tokens=tokens, add_generation_prompt=generation,
                                        enable_thinking=thinking)
        rendered = render_jinja(jinja, to_hf_messages(shown, SYSTEM), special_tokens=_Tokenizer.special_tokens_map,
                                add_generation_prompt=generation, enable_thinking=thinking)
        assert rendered == expected
    assert ("A greeting." in expected) is thinking
