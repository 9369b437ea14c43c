"""The anchor's `fewshot` template: plain text, no chat markup, for benchmarking base models.

The anchor's own eval example config says `template: fewshot`: user turns are written as they are,
each answer is followed by a blank line, and nothing marks the roles. tunelab's chat-template
registry has no such entry (it is not a chat format), so the benchmark renders it here; when the
registry gains a `fewshot` template, that one is used instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.data.conversation import Message, Role

NAME = "fewshot"


@dataclass(frozen=True)
class FewshotTemplate:
    """Renders a chat as the continuous text a base model reads; `name` mirrors a registry template."""

    name: str = NAME

    def render_text(self, messages: Sequence[Message]) -> str:
        return "".join(m.content + ("\n\n" if m.role == Role.ASSISTANT else "") for m in messages)

    def encode(self, tokenizer: Any, messages: Sequence[Message]) -> list[int]:
        """Token ids of the text, with the model's bos token when its tokenizer adds one."""
        ids = list(tokenizer(self.render_text(messages), add_special_tokens=False)["input_ids"])
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is not None and getattr(tokenizer, "add_bos_token", False) and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        return ids


def wants_builtin_fewshot(name: str | None) -> bool:
    """True when the config asks for `fewshot` and the chat-template registry does not provide it."""
    from tunelab.data.templates.registry import ALIASES, REGISTRY

    return name == NAME and ALIASES.get(name, name) not in REGISTRY


def encode_messages(tokenizer: Any, template: Any, messages: Sequence[Message]) -> list[int]:
    """Prompt ids for a benchmark question under either kind of template."""
    if isinstance(template, FewshotTemplate):
        return template.encode(tokenizer, messages)
    from tunelab.data.encode import encode_prompt

    return encode_prompt(tokenizer, template, messages)
