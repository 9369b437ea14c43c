"""What chat and completion jobs share: the sampling settings a request asks for, and cancelling.

A job is one validated request ready to run: `count` generations (prompts x n), each started with
`start(index)`. `cancel()` (the client went away) stops every stream the job has started, at once,
and makes any later `start()` raise `RequestCancelled`, so a queued request never starts work.
"""

from __future__ import annotations

import threading
from typing import Any

from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import TextStream
from tunelab.infer.structured import INSTALL_HINT, Constraint, GrammarLibraryMissing, problem
from tunelab.serve.errors import ApiError, RequestCancelled
from tunelab.serve.protocol import SamplingRequest


def logit_bias(request: SamplingRequest, tokenizer: Any) -> tuple[tuple[int, float], ...] | None:
    """`logit_bias` as (token id, bias) pairs; a 400 for an id outside the vocabulary."""
    if not request.logit_bias:
        return None
    vocab = len(tokenizer)
    pairs = tuple((int(token), float(bias)) for token, bias in request.logit_bias.items())
    for token, _ in pairs:
        if token >= vocab:
            raise ApiError(400, f"logit_bias: token id {token} is outside this model's vocabulary (0..{vocab - 1}).",
                           param="logit_bias", code="invalid_value")
    return pairs


def sampling_overrides(request: SamplingRequest, tokenizer: Any) -> dict[str, Any]:
    """The SamplingParams a request sets (None: the server's default stays)."""
    return {
        "max_new_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
        "top_k": request.top_k, "do_sample": request.do_sample, "repetition_penalty": request.repetition_penalty,
        "presence_penalty": request.presence_penalty, "frequency_penalty": request.frequency_penalty,
        "logit_bias": logit_bias(request, tokenizer), "stop": request.stop_list() or None,
    }


def checked(constraint: Constraint | None, tokenizer: Any, param: str) -> Constraint | None:
    """The constraint, once the grammar library has compiled it; a 400 naming `param` if it cannot."""
    if constraint is None:
        return None
    try:
        found = problem(constraint, tokenizer)
    except GrammarLibraryMissing:
        raise ApiError(400, f"{param} needs the `api` extra: {INSTALL_HINT}", param=param,
                       code="missing_package") from None
    if found:
        raise ApiError(400, f"{param}: the schema cannot be enforced: {found}", param=param, code="invalid_value")
    return constraint


class Job:
    """Started streams and the cancelled flag, guarded by one lock (start and cancel run on different threads)."""

    count: int = 1
    max_new_tokens_total: int | None = None

    def __init__(self, chat_model: ChatModel) -> None:
        self.chat_model = chat_model
        self._lock = threading.Lock()
        self._streams: list[TextStream] = []
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _track(self, stream: TextStream) -> TextStream:
        with self._lock:
            if not self._cancelled:
                self._streams.append(stream)
                return stream
        stream.close()
        raise RequestCancelled("the request was cancelled")

    def _refuse_if_cancelled(self) -> None:
        if self._cancelled:
            raise RequestCancelled("the request was cancelled")

    def cancel(self) -> None:
        """Stop every started stream; later starts raise RequestCancelled. Thread-safe, idempotent."""
        with self._lock:
            self._cancelled = True
            streams = list(self._streams)
        for stream in streams:
            stream.cancel()

    def close(self) -> None:
        """Release every started stream (the answer is complete, or the client left)."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()

    def _max_total(self, per_choice: int | None) -> int | None:
        return None if per_choice is None else per_choice * self.count
