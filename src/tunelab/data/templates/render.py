"""Rendering: a conversation and a `Template` become a list of `Segment`s.

Rendering is the single place where template fields are interpreted; encoding only tokenizes the
segments and reads their flags. Keeping markup, content, prompt and response apart here is what
lets encoding mask labels and truncate without ever re-parsing text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.markup import CONTENT, Segment, SpecialTokens
from tunelab.data.templates.tools import ToolPlacement, get_tool_format, parse_calls
from tunelab.errors import UserError

if TYPE_CHECKING:  # only a type here: base.py imports this module for Template.render
    from tunelab.data.templates.base import Template


@dataclass
class _Builder:
    """Accumulates segments; remembers when a stop word of the next turn closes the previous answer."""

    tokens: SpecialTokens
    stop_words: tuple[str, ...] = ()
    segments: list[Segment] = field(default_factory=list)
    turn: int = 0
    close_turn: int | None = None  # efficient-eos templates: the next role token ends this turn

    def add(self, text: str, *, response: bool = False, content: bool = False, trainable: bool = True) -> None:
        if not text:
            return
        if self.close_turn is not None and not response:
            stop = next((s for s in self.stop_words if text.startswith(s)), None)
            if stop:
                self.segments.append(Segment(stop, self.close_turn, response=True))
                text = text[len(stop) :]
            self.close_turn = None
            if not text:
                return
        self.segments.append(Segment(text, self.turn, response=response, content=content, trainable=trainable))

    def markup(self, fmt: str, **flags: Any) -> None:
        self.add(self.tokens.fill(fmt), **flags)

    def format(self, fmt: str, pieces: Sequence[tuple[str, bool]], **flags: Any) -> None:
        """Write `fmt` with `{{content}}` replaced by `pieces` ((text, is_content) pairs)."""
        before, _, after = fmt.partition(CONTENT)
        self.markup(before, **flags)
        for text, is_content in pieces:
            self.add(text, content=is_content, **flags)
        self.markup(after, **flags)


def split_reasoning(content: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[str, str]:
    """(reasoning, answer) of an assistant turn, the way Qwen3's official template splits it."""
    if close_tag not in content:
        return "", content
    head, _, answer = content.rpartition(close_tag)
    reasoning = head.rstrip("\n").split(open_tag)[-1].lstrip("\n")
    return reasoning, answer


def render(
    template: Template,
    messages: Sequence[Message],
    *,
    system: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    tokens: SpecialTokens | None = None,
    add_generation_prompt: bool = False,
    enable_thinking: bool = True,
) -> list[Segment]:
    """The segments of one conversation, exactly as the template's official jinja writes it.

    `system` None or "" uses the template's default system prompt. `tools` are normalised schemas
    (see `tools.normalize_tools`). With `add_generation_prompt` the assistant header of the next
    turn is appended (inference, and the shared prompt of preference pairs).
    """
    if template.thinking is not None and not template.thinking.switchable and not enable_thinking:
        raise UserError(
            f"enable_thinking: false cannot be used with template {template.name}: its official chat template opens a "
            "<think> block in every generation prompt, so the model would be trained on answers it is never prompted "
            "for. Keep enable_thinking: true with answers that carry their reasoning (<think>...</think>), or use "
            "template deepseek3 for answers without reasoning."
        )
    tokens = tokens or SpecialTokens()
    out = _Builder(tokens, template.stop_words)
    fmt = get_tool_format(template.tool_format)
    system_text = system or template.default_system
    if template.strip_system:  # the user's text is trimmed, the tool prompt around it is not (Llama 3.1)
        system_text = system_text.strip()
    placement = fmt.place(system_text, tools) if tools else ToolPlacement(system=system_text)
    system_text = placement.system

    users = [i for i, m in enumerate(messages) if m.role == Role.USER]
    first_user = users[0] if users else -1
    last_user = users[-1] if users else -1

    out.markup(template.prefix)
    if system_text and not template.system_in_user:
        out.format(template.system, [(system_text, True)])

    for index, message in enumerate(messages):
        if message.role in (Role.USER, Role.OBSERVATION):
            pieces: list[tuple[str, bool]] = []
            if index == first_user and system_text and template.system_in_user:
                before, _, after = tokens.fill(template.system).partition(CONTENT)
                pieces += [(before, False), (system_text, True), (after, False)]
            if index == first_user and placement.first_user_prefix:
                pieces.append((placement.first_user_prefix, False))
            result = fmt.format_result(message.content) if message.role == Role.OBSERVATION else None
            if result is not None:
                text = result
            else:
                text = message.content.strip() if template.strip_content else message.content
            pieces.append((text, True))
            if index == last_user and placement.last_user_prefix:
                out.markup(placement.last_user_prefix)
            role_format = template.user if message.role == Role.USER else (template.observation or template.user)
            out.format(role_format, pieces)
            continue

        out.markup(template.generation)
        if message.role == Role.FUNCTION:
            reasoning, answer = "", fmt.format_calls(parse_calls(message.content))
        elif template.thinking is not None:
            reasoning, answer = split_reasoning(message.content, template.thinking.open, template.thinking.close)
            if template.thinking.lstrip_answer:
                answer = answer.lstrip("\n")
        else:
            reasoning, answer = "", message.content
        if template.strip_content:
            answer = answer.strip()
        pieces = _answer_pieces(template, reasoning, answer, index, len(messages), last_user, enable_thinking, out)
        trainable = pieces is not None
        answer_format = template.function if message.role == Role.FUNCTION and template.function else template.assistant
        out.format(answer_format, pieces or [(answer, True)], response=True, trainable=trainable)
        if template.efficient_eos:
            out.close_turn = out.turn
        out.turn += 1
        out.markup(template.separator)

    if add_generation_prompt:
        out.markup(template.generation + template.generation_suffix)
        if template.thinking is not None and not enable_thinking:
            out.add(template.thinking.empty)
    elif messages and messages[-1].role in (Role.ASSISTANT, Role.FUNCTION):
        out.markup(template.suffix)
    return out.segments


def _answer_pieces(
    template: Template,
    reasoning: str,
    answer: str,
    index: int,
    count: int,
    last_user: int,
    enable_thinking: bool,
    out: _Builder,
) -> list[tuple[str, bool]] | None:
    """Content pieces of an assistant turn; None when the turn must stay context only.

    Reasoning templates write a think block on the turns after the last user query (Qwen3) or on
    the last turn only (DeepSeek-R1). A turn written without the block it would carry if it were
    the model's current answer is not what the model generates, so it is not trained.
    """
    thinking = template.thinking
    if thinking is None:
        return [(answer, True)]
    if not enable_thinking:
        reasoning = ""
    is_last = index == count - 1
    keeps_block = thinking.every_turn or is_last or (thinking.history and bool(reasoning)) or (index > last_user and bool(reasoning) and not thinking.last_only)
    if not keeps_block:
        return [(answer, True)] if not (reasoning or thinking.empty) else None
    if not reasoning:
        if not thinking.empty:
            return [(answer.lstrip("\n"), True)]
        if enable_thinking:
            return [(thinking.empty, False), (answer.lstrip("\n"), True)]
        out.add(thinking.empty)  # context: the generation prompt of enable_thinking=False
        return [(answer.lstrip("\n"), True)]
    before, _, after = thinking.block.partition("{reasoning}")
    return [(before, False), (reasoning.strip("\n"), True), (after, False), (answer.lstrip("\n"), True)]
