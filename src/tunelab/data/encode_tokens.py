"""Tokenizing rendered segments: token ids plus, for every token, which segment it came from.

The whole rendered text is tokenized in one call (as `apply_chat_template(tokenize=True)` does), so
token ids equal the official ones even where a token spans a template boundary (e.g. DeepSeek's
"Assistant:" + " Hi"). Character offsets then map each token back to its segments: a token is
trained when any of its characters belongs to a trained segment. Tokenizers without offsets (slow,
Python ones) fall back to tokenizing segment by segment.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, NamedTuple

from tunelab.data.templates.base import Segment


class Token(NamedTuple):
    """One token id and what the rendering says about it.

    A NamedTuple rather than a frozen dataclass: one is built per token of every example, and tuple
    construction is several times cheaper (it dominated preprocessing time).
    """

    id: int
    turn: int
    response: bool  # overlaps the text of an assistant turn
    trained: bool  # overlaps trained text
    content: bool  # comes from the data, not from the template's markup
    unit: int  # tokens sharing a unit are kept or dropped together by truncation


def tokenize_segments(tokenizer: Any, segments: Sequence[Segment]) -> list[Token]:
    """Tokens of the concatenated segments, each labelled from the segments it overlaps."""
    if not segments:
        return []
    if getattr(tokenizer, "is_fast", False):
        return _tokenize_with_offsets(tokenizer, segments)
    return _tokenize_each(tokenizer, segments)


def _tokenize_with_offsets(tokenizer: Any, segments: Sequence[Segment]) -> list[Token]:
    starts: list[int] = []
    position = 0
    for segment in segments:
        starts.append(position)
        position += len(segment.text)
    text = "".join(segment.text for segment in segments)
    ids, offsets = _ids_and_offsets(tokenizer, text)
    tokens = []
    ends = starts[1:] + [position]
    fields = [(segment.turn, segment.response, segment.trained, segment.content) for segment in segments]
    current = 0  # offsets only move forward: the segment of the previous token is the first candidate
    for index, (token_id, (start, end)) in enumerate(zip(ids, offsets)):
        last_char = end - 1 if end > start else start
        if not starts[current] <= start < ends[current]:
            current = max(bisect.bisect_right(starts, start) - 1, 0)
        if last_char < ends[current]:  # the usual case: the token lies inside one segment
            turn, response, trained, content = fields[current]
            tokens.append(Token(token_id, turn, response, trained, content, -1 - index if content else current))
            continue
        first = current
        last = max(bisect.bisect_right(starts, last_char) - 1, first)
        covered = range(first, last + 1)
        owner = next((i for i in covered if segments[i].response), first)
        segment = segments[owner]
        tokens.append(Token(int(token_id), segment.turn, segment.response, any(segments[i].trained for i in covered),
                            segment.content, -1 - index if segment.content else owner))
    return tokens


def _ids_and_offsets(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets, straight from the Rust tokenizer when there is one (the
    transformers wrapper around it cost a fifth of the encoding time; the result is the same)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        encoding = backend.encode(text, add_special_tokens=False)
        return encoding.ids, encoding.offsets
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return encoded["input_ids"], encoded["offset_mapping"]


def _tokenize_each(tokenizer: Any, segments: Sequence[Segment]) -> list[Token]:
    tokens = []
    for number, segment in enumerate(segments):
        ids = tokenizer.encode(segment.text, add_special_tokens=False)
        for token_id in ids:
            unit = -1 - len(tokens) if segment.content else number
            tokens.append(Token(int(token_id), segment.turn, segment.response, segment.trained, segment.content, unit))
    return tokens
