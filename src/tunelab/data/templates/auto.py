"""`template: auto`: train with the tokenizer's own jinja chat template, no registry entry needed.

The assistant spans are found by rendering: for assistant turn k, the conversation up to k with a
generation prompt is the prompt P; the conversation up to and including k is P + R. R, as far as
the full conversation repeats it after P, is that turn's trained text. A turn the full rendering
rewrites (e.g. Qwen3 dropping the reasoning of earlier turns) is therefore context, not trained —
the same rule the named reasoning templates follow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.base import Segment, SpecialTokens, Template
from tunelab.data.templates.jinja import render_jinja, special_tokens_map, to_hf_messages
from tunelab.data.templates.render import split_reasoning
from tunelab.data.templates.tools import parse_calls

logger = logging.getLogger("tunelab.data.templates")


@dataclass(frozen=True)
class AutoTemplate(Template):
    """A template backed by a jinja chat template (normally the tokenizer's own)."""

    jinja: str = ""
    special: tuple[tuple[str, str], ...] = ()
    content_parts: bool = False  # the jinja reads `content` as a list of {"type": "text", ...} parts (LLaVA-NeXT)
    thinking_switch: bool = True  # `enable_thinking` reaches the jinja; False: a "nothink" name keeps its jinja's default

    def render(
        self,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        tokens: SpecialTokens | None = None,
        add_generation_prompt: bool = False,
        enable_thinking: bool = True,
    ) -> list[Segment]:
        system = system or self.default_system or None
        reasoning_key = _reasoning_key(self.jinja)
        if not enable_thinking and (reasoning_key or "</think>" in self.jinja):  # answers lose their reasoning
            messages = [
                Message(m.role, split_reasoning(m.content)[1].lstrip("\n")) if m.role == Role.ASSISTANT else m
                for m in messages
            ]
        offset = 1 if system else 0
        hf = to_hf_messages(messages, system)
        if reasoning_key:
            hf = [_with_reasoning(m, reasoning_key) if m["role"] == "assistant" else m for m in hf]
        if self.content_parts:
            hf = [{**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m.get("content"), str) else m
                  for m in hf]
        options: dict[str, Any] = {"special_tokens": dict(self.special), "tools": tools}
        if self.thinking_switch:
            options["enable_thinking"] = enable_thinking
        full = render_jinja(self.jinja, hf, add_generation_prompt=add_generation_prompt, **options)

        spans: list[tuple[int, int, bool]] = []
        for index, message in enumerate(messages):
            if message.role not in (Role.ASSISTANT, Role.FUNCTION):
                continue
            prompt = render_jinja(self.jinja, hf[: offset + index], add_generation_prompt=True, **options)
            whole = render_jinja(self.jinja, hf[: offset + index + 1], **options)
            start = len(prompt)
            if not whole.startswith(prompt):
                # The generation prompt opens something this turn's own rendering does not write (GLM-4.7,
                # MiniMax-M2: `<think>` for an answer that has no reasoning; Gemma 4: an empty thought
                # channel): the turn is what the template writes after the assistant header.
                history = len(render_jinja(self.jinja, hf[: offset + index], **options))
                start = _markup_boundary(whole, _common_prefix(prompt, whole))
                start = start if start >= history else -1
            if start < 0 or not full.startswith(whole[:start]) or (spans and start < spans[-1][1]):
                spans.append((spans[-1][1] if spans else 0, spans[-1][1] if spans else 0, False))
                continue
            response = whole[start:]
            size = _markup_boundary(response, _common_prefix(response, full[start:]))
            while size > 0 and response[size - 1] == "\n" and response[:size].strip():
                size -= 1  # the separator after the end-of-turn token is not part of the answer
            if message.role == Role.ASSISTANT:
                needles = [split_reasoning(message.content)[1].strip()]
            else:
                needles = [call.name for call in parse_calls(message.content)]
            trained = bool(size) and all(needle in response[:size] for needle in needles)
            spans.append((start, start + size, trained))
        contents = [m.content for m in messages if m.role in (Role.USER, Role.OBSERVATION)]
        return _segments(full, spans, ([system] if system else []) + contents)


def _reasoning_key(jinja: str) -> str:
    """The message key a jinja reads an answer's reasoning from ("" when it reads none)."""
    if "reasoning_content" in jinja:  # Qwen3 / 3.5, GLM-4.5+, Seed-OSS, MiniMax-M2, Gemma 4, Hunyuan 3
        return "reasoning_content"
    if "message.thinking" in jinja:  # gpt-oss: the analysis channel
        return "thinking"
    return ""


def _with_reasoning(message: dict[str, Any], key: str) -> dict[str, Any]:
    """An answer whose `<think>...</think>` (the LLaMA-Factory data convention) moves to the key its jinja reads.

    Templates that parse the tags themselves (Qwen3) render the same either way; those that only read
    the key (gpt-oss's `thinking`) would otherwise write the tags into the final answer.
    """
    content = message.get("content")
    if not isinstance(content, str) or "</think>" not in content:
        return message
    reasoning, answer = split_reasoning(content)
    return {**message, "content": answer.lstrip("\n"), key: reasoning.strip("\n")}


def _markup_boundary(text: str, size: int) -> int:
    """`size`, moved back to the start of a markup token that `text[:size]` cuts in two.

    Two renderings can agree up to the middle of a control token (gpt-oss ends an earlier answer
    with `<|end|>` and the last one with `<|return|>`; they share `<|`); a span never ends inside one.
    """
    head = text[:size]
    cut = head.rfind("<")
    return cut if cut > head.rfind(">") and size - cut <= 32 else size


def _common_prefix(a: str, b: str) -> int:
    size = min(len(a), len(b))
    for i in range(size):
        if a[i] != b[i]:
            return i
    return size


def _segments(text: str, spans: list[tuple[int, int, bool]], contents: list[str]) -> list[Segment]:
    """Cut `text` into prompt and response segments; prompt contents found in order are `content`."""
    segments: list[Segment] = []
    position = 0
    pending = [c for c in contents if c]
    for turn, (start, end, trained) in enumerate([*spans, (len(text), len(text), False)]):
        position = _prompt_segments(text, position, start, turn, pending, segments)
        if end > start:
            segments.append(Segment(text[start:end], turn, response=True, content=True, trainable=trained))
            position = end
    return segments


def _prompt_segments(text: str, start: int, end: int, turn: int, pending: list[str], out: list[Segment]) -> int:
    position = start
    while pending:
        found = text.find(pending[0], position, end)
        if found < 0:
            break
        if found > position:
            out.append(Segment(text[position:found], turn))
        out.append(Segment(pending[0], turn, content=True))
        position = found + len(pending.pop(0))
    if end > position:
        out.append(Segment(text[position:end], turn))
    return max(position, end)


def auto_template(tokenizer: Any, named: Sequence[str] = (), *, announce: bool = True) -> AutoTemplate:
    """The auto template of `tokenizer`; a UserError lists the named templates when it has no jinja.

    `announce=False`: built only as a reference (the drift guard), so "using ... (template: auto)" is not logged."""
    from tunelab.errors import UserError

    jinja = getattr(tokenizer, "chat_template", None)
    if isinstance(jinja, dict):  # several named templates: transformers uses "default"
        jinja = jinja.get("default")
    if not jinja:
        where = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
        raise UserError(
            f"template: {os.path.basename(str(where)) or where} has no chat template of its own, so `template: auto` "
            f"cannot be used; set `template:` to one of: {', '.join(named)}"
        )
    eos = getattr(tokenizer, "eos_token", None) or ""
    template = AutoTemplate(
        name="auto",
        description="the tokenizer's own chat template",
        user="",
        end_of_turn=eos,
        stop_words=(eos,) if eos else (),
        jinja=jinja,
        special=tuple(sorted(special_tokens_map(tokenizer).items())),
    )
    if announce:
        logger.info("template: using the tokenizer's own chat template (template: auto) of %s",
                    getattr(tokenizer, "name_or_path", "?"))
    return template
