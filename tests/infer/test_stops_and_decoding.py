"""Stop strings across piece boundaries, and incremental decoding of multi-token characters."""

from __future__ import annotations

from typing import Any

import pytest

from tunelab.infer.detokenize import IncrementalDecoder
from tunelab.infer.stops import StopMatcher
from tunelab.testing import fixture_tokenizer_path


def run(stops: list[str], pieces: list[str]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    out = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        if text:
            out.append(text)
        if hit:
            return out, True
    tail = matcher.flush()
    return out + ([tail] if tail else []), False


def test_no_stops_passes_everything_through() -> None:
    assert run([], ["a", "b"]) == (["a", "b"], False)


def test_stop_inside_one_piece_cuts_it() -> None:
    assert run(["END"], ["hello END world"]) == (["hello "], True)


def test_stop_split_across_pieces_never_leaks() -> None:
    out, hit = run(["Observation:"], ["Answer. Obs", "erva", "tion: x"])
    assert hit and "".join(out) == "Answer. "
    assert out == ["Answer. "]  # "Obs" was held back, not sent and retracted


def test_partial_match_that_fails_is_released() -> None:
    assert run(["STOP"], ["ST", "ART", "!"]) == (["START", "!"], False)
    assert run(["abc"], ["xa", "b"]) == (["x", "ab"], False)  # flushed at the end


def test_earliest_of_several_stops_wins() -> None:
    assert run(["world", "lo"], ["hello world"]) == (["hel"], True)


@pytest.fixture(scope="module")
def qwen_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_tokenizer_path("qwen2.5"))


@pytest.mark.parametrize("text", ["Hello, world!", "你好，世界。😀 emoji", "naïve café – ünïcödé", "a\n\n  b\tc"])
def test_incremental_decoding_equals_full_decoding(qwen_tokenizer: Any, text: str) -> None:
    ids = qwen_tokenizer.encode(text, add_special_tokens=False)
    decoder = IncrementalDecoder(qwen_tokenizer)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)  # a half character is never emitted


def test_special_tokens_skipped_or_kept(qwen_tokenizer: Any) -> None:
    ids = qwen_tokenizer.encode("hi<|im_end|>", add_special_tokens=False)
    for skip, expected in ((True, "hi"), (False, "hi<|im_end|>")):
        decoder = IncrementalDecoder(qwen_tokenizer, skip_special_tokens=skip)
        assert "".join([decoder.push(i) for i in ids] + [decoder.flush()]) == expected
