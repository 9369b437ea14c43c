"""The engine interface: prompt token ids in, a stream of text pieces out.

Everything above an engine (templates, tool calls, the API's protocol, the terminal and web chats)
is written once against this interface, so the hf and vllm backends, and the fake engines of the
tests, are interchangeable. Stop strings are applied here, in the base stream, so every backend
honours them identically.

An engine may decode several streams together (the hf engine's batcher, vLLM's scheduler); the server
tells it how many at most with `set_max_batch`, and `/health` reports `scheduler_state()`. Streams
started while `request_group` is set belong to that request, so a batching engine can share its rows
fairly between requests (one asking for 64 choices does not take every row from the next one).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from tunelab.infer.params import SamplingParams
from tunelab.infer.stops import StopMatcher

#: The request the streams started in this context belong to (the server sets it for each request; it
#: follows the request into its worker threads). None: every stream is a request of its own.
request_group: ContextVar[object | None] = ContextVar("tunelab_request_group", default=None)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability and the `top` most likely tokens at its step, each (id, logprob):
    log_softmax of the scores after the request's logits processors, before temperature / top-p / top-k."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


class TextStream(abc.ABC):
    """One generation in progress. Iterate it for text pieces; afterwards `finish_reason`
    ("stop" or "length") and `completion_tokens` are set, and, when `params.logprobs` is not None,
    `token_logprobs` holds one `TokenLogprob` per generated token (the end-of-turn token included, as
    `completion_tokens` counts it). `cancel()` may be called from any thread (a client went away);
    `close()` cancels and releases the backend's resources."""

    def __init__(self, params: SamplingParams, prompt_tokens: int) -> None:
        self.params = params
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.token_logprobs: list[TokenLogprob] = []
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
        """Cancel, and end the iteration. Safe from any thread: while another thread is inside `next()`
        (a server worker waiting for the next token), cancelling is what ends it there."""
        self.cancel()
        if self._iterator is not None:
            try:
                self._iterator.close()  # type: ignore[attr-defined]
            except ValueError:  # "generator already executing" in the other thread
                pass


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

    def set_max_batch(self, max_batch: int) -> None:  # noqa: B027 (a default, not an abstract method)
        """How many sequences the engine may decode together (API_MAX_BATCH). Engines that schedule
        themselves (vLLM) or run one stream per thread keep their own way and ignore it."""

    def scheduler_state(self) -> dict[str, int] | None:
        """Sequences decoding now and waiting for a place in the batch, for engines that batch; else None."""
        return None
