"""Rendering a jinja chat template the way `transformers.apply_chat_template` does.

Used by `template: auto` (the tokenizer's own template), by the parity tests (official templates
of families without a real tokenizer) and by `chat_template_for_saving`. tunelab's messages are
converted to the OpenAI/transformers message shape first, so official templates see what they expect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.tools import parse_calls
from tunelab.errors import UserError


def to_hf_messages(messages: Sequence[Message], system: str | None = None) -> list[dict[str, Any]]:
    """tunelab messages as transformers chat messages (function calls as `tool_calls`, results as `tool`)."""
    result: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == Role.USER:
            result.append({"role": "user", "content": message.content})
        elif message.role == Role.ASSISTANT:
            result.append({"role": "assistant", "content": message.content})
        elif message.role == Role.OBSERVATION:
            result.append({"role": "tool", "content": message.content})
        else:
            calls = [
                {"type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in parse_calls(message.content)
            ]
            result.append({"role": "assistant", "content": "", "tool_calls": calls})
    return result


def render_jinja(
    chat_template: str,
    messages: list[dict[str, Any]],
    *,
    special_tokens: Mapping[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    **kwargs: Any,
) -> str:
    """The text `apply_chat_template(..., tokenize=False)` would produce with these special tokens."""
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(
            conversations=[messages],
            tools=tools or None,
            chat_template=chat_template,
            add_generation_prompt=add_generation_prompt,
            **{**dict(special_tokens or {}), **kwargs},
        )
    except Exception as error:  # jinja's raise_exception, undefined names, bad syntax
        raise UserError(f"the chat template could not render this conversation: {error}") from None
    return rendered[0]


def special_tokens_map(tokenizer: Any) -> dict[str, Any]:
    """bos/eos/pad/unk strings of a tokenizer, as templates receive them."""
    found = getattr(tokenizer, "special_tokens_map", None) or {}
    return {key: value for key, value in found.items() if isinstance(value, str)}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
