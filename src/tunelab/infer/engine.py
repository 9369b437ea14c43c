"""The engine interface: prompt token ids in, a stream of text pieces out.

Everything above an engine (templates, tool calls, the API's protocol, the terminal and web chats)
is written once against this interface, so the hf and vllm backends, and the fake engines of the
tests, are interchangeable. Stop strings are applied here, in the base stream, so every backend
honours them identically.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tunelab.infer.params import SamplingParams
from tunelab.infer.stops import StopMatcher


class TextStream(abc.ABC):
    """One generation in progress. Iterate it for text pieces; afterwards `finish_reason`
    ("stop" or "length") and `completion_tokens` are set. `cancel()` may be called from any thread
    (a client went away); `close()` cancels and releases the backend's resources."""

    def __init__(self, params: SamplingParams, prompt_tokens: int) -> None:
        self.params = params
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._iterator: Iterator[str] | None = None

    @abc.abstractmethod
    def _pieces(self) -> Iterator[str]:
        """Raw text pieces from the backend; set `completion_tokens` and `finish_reason` as it ends."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Ask the backend to stop generating soon; thread-safe and idempotent."""

    def _stopped_pieces(self) -> Iterator[str]:
        matcher = StopMatcher(self.params.stop)
        pieces = self._pieces()
        try:
            for piece in pieces:
                text, hit = matcher.feed(piece)
                if text:
                    yield text
                if hit:
                    self.cancel()
                    break
            tail = matcher.flush()
            if tail:
                yield tail
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
            if matcher.stopped:
                self.finish_reason = "stop"

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = self._stopped_pieces()
        return self._iterator

    def __next__(self) -> str:
        return next(iter(self))

    def text(self) -> str:
        """Run to the end and return the whole text."""
        return "".join(self)

    def close(self) -> None:
        self.cancel()
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PromptMedia:
    """The pictures (videos, sounds) of one prompt, in the form its engine takes them.

    transformers' `generate` takes the processor's tensors beside the prompt whose placeholders the
    processor already expanded (`tensors`); vLLM runs the processor itself, so it takes the decoded media
    (`raw`, by vLLM's modality names) and the prompt with one placeholder per picture (`placeholder_ids`).
    `ChatModel` fills the second form only for engines that say they want it (`Engine.raw_media`)."""

    tensors: Mapping[str, Any] = field(default_factory=dict)  # pixel_values, image_grid_thw, mm_token_type_ids ...
    raw: Mapping[str, list[Any]] = field(default_factory=dict)  # "image": [PIL images], "audio": [(wave, rate)] ...
    placeholder_ids: list[int] | None = None


class Engine(abc.ABC):
    """A loaded model that generates from token ids. `tokenizer` is the model's own."""

    tokenizer: Any
    stop_ids: list[int]
    max_context: int | None = None  # prompt + answer tokens the model supports, when known
    raw_media: bool = False  # True: media go in decoded with the unexpanded prompt (PromptMedia.raw), as vLLM takes them

    @abc.abstractmethod
    def stream(self, prompt_ids: list[int], params: SamplingParams, media_inputs: PromptMedia | None = None) -> TextStream:
        """Start generating; returns at once, the work happens as the stream is iterated. `media_inputs`: the
        prompt's media, when it has any (only multimodal models are given them)."""

    def describe(self) -> str:
        """One line for logs: backend and model."""
        return type(self).__name__
