"""Separating a reasoning model's thinking from its answer, as OpenAI-compatible servers report it
(`reasoning_content` beside `content`), also while streaming.

Reasoning templates (qwen3, deepseekr1) have the model write `<think> ... </think>` before the
answer; DeepSeek-R1's generation prompt already opens the block, so its output starts inside it.
Tags can arrive split across pieces, so text that may be part of a tag is held back until it is
known, as stop strings are.
"""

from __future__ import annotations

from tunelab.data.templates.base import Template

REASONING, CONTENT = "reasoning", "content"


class ReasoningSplitter:
    """Feed pieces in order; each call returns (kind, text) parts, kind "reasoning" or "content"."""

    def __init__(self, open_tag: str, close_tag: str, *, starts_inside: bool = False, lstrip_answer: bool = True) -> None:
        self.open_tag = open_tag
        self.close_tag = close_tag
        self.lstrip_answer = lstrip_answer
        self.state = "reasoning" if starts_inside else "start"
        self._held = ""
        self._strip_next = False
        self._reasoning_started = False  # newlines right after the opening tag are not reasoning

    def feed(self, piece: str) -> list[tuple[str, str]]:
        text = self._held + piece
        self._held = ""
        if self.state == "start":
            stripped = text.lstrip()
            if stripped.startswith(self.open_tag):
                self.state = "reasoning"
                text = stripped[len(self.open_tag) :].lstrip("\n")
            elif self.open_tag.startswith(stripped):
                self._held = text  # still possibly the opening tag
                return []
            else:
                self.state = "content"
        if self.state == "reasoning":
            if not self._reasoning_started:
                text = text.lstrip("\n")
                self._reasoning_started = bool(text)
            end = text.find(self.close_tag)
            if end >= 0:
                self.state = "content"
                self._strip_next = True
                parts = [(REASONING, text[:end].rstrip("\n"))] if text[:end].rstrip("\n") else []
                return parts + self.feed(text[end + len(self.close_tag) :]) if text[end + len(self.close_tag):] else parts
            keep = _partial_suffix(text, self.close_tag)
            while keep < len(text) and text[len(text) - keep - 1] == "\n":
                keep += 1  # newlines before the closing tag are not reasoning either
            self._held = text[len(text) - keep :] if keep else ""
            out = text[: len(text) - keep]
            return [(REASONING, out)] if out else []
        if self._strip_next and self.lstrip_answer:
            text = text.lstrip()
            if not text:
                return []
        self._strip_next = False
        return [(CONTENT, text)] if text else []

    def flush(self) -> list[tuple[str, str]]:
        held, self._held = self._held, ""
        if not held:
            return []
        return [(REASONING if self.state == "reasoning" else CONTENT, held)]


def _partial_suffix(text: str, tag: str) -> int:
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def splitter_for(template: Template, enable_thinking: bool) -> ReasoningSplitter | None:
    """A splitter when the template reasons and thinking is on; None otherwise."""
    thinking = template.thinking
    if thinking is None or not enable_thinking:
        return None
    inside = thinking.open in template.generation_suffix
    return ReasoningSplitter(thinking.open, thinking.close, starts_inside=inside, lstrip_answer=thinking.lstrip_answer)


def split_reasoning(text: str, splitter: ReasoningSplitter | None) -> tuple[str | None, str]:
    """(reasoning or None, answer) of a whole output."""
    if splitter is None:
        return None, text
    parts = splitter.feed(text) + splitter.flush()
    reasoning = "".join(t for kind, t in parts if kind == REASONING)
    return (reasoning or None), "".join(t for kind, t in parts if kind == CONTENT)
