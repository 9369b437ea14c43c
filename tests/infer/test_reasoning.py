"""Thinking vs answer of reasoning models, whole and streamed in awkward pieces."""

from __future__ import annotations

import pytest

from tunelab.data.templates import get_template
from tunelab.infer.reasoning import ReasoningSplitter, split_reasoning, splitter_for

FULL = "<think>\nLet me\n\nsee.\n</think>\n\nDone."


def streamed(pieces: list[str], **options: bool) -> tuple[str, str]:
    splitter = ReasoningSplitter("<think>", "</think>", **options)
    parts = [part for piece in pieces for part in splitter.feed(piece)] + splitter.flush()
    return "".join(t for k, t in parts if k == "reasoning"), "".join(t for k, t in parts if k == "content")


@pytest.mark.parametrize("pieces", [[FULL], list(FULL), ["<th", "ink>\nLet me\n\nse", "e.\n</th", "ink>\n\nDo", "ne."]])
def test_any_split_gives_the_same_parts(pieces: list[str]) -> None:
    assert streamed(pieces) == ("Let me\n\nsee.", "Done.")


def test_answers_without_a_block_are_all_content() -> None:
    assert streamed(["Just", " an answer"]) == ("", "Just an answer")
    assert streamed(["  <", "b>bold"]) == ("", "  <b>bold")


def test_output_that_starts_inside_the_block() -> None:
    assert streamed(["abc\n</think>\n\nok"], starts_inside=True, lstrip_answer=False) == ("abc", "\n\nok")
    assert streamed(["<think>\nunfinished"]) == ("unfinished", "")


def test_templates_choose_the_splitter() -> None:
    assert splitter_for(get_template("qwen"), True) is None
    assert splitter_for(get_template("qwen3"), False) is None
    assert splitter_for(get_template("qwen3"), True).state == "start"
    assert splitter_for(get_template("deepseekr1"), True).state == "reasoning"  # its prompt opens the block
    assert split_reasoning(FULL, None) == (None, FULL)
