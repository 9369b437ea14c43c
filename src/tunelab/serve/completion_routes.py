"""`POST /v1/completions`: plain-text continuation, no chat template (base models, scripts).

Each prompt of the request gets `n` choices, numbered prompt-major as OpenAI does
(`index = prompt * n + choice`); streaming sends `text_completion` chunks, a usage chunk when
`stream_options.include_usage` asks for one, and `[DONE]`. `echo` puts the prompt before the text;
`logprobs: k` reports each token's log-probability and its k most likely alternatives.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import TextStream
from tunelab.serve.job import Job, sampling_overrides
from tunelab.serve.limiter import Slot
from tunelab.serve.logprobs import LogprobFormatter
from tunelab.serve.protocol import CompletionRequest, now, usage
from tunelab.serve.request_fields import COMPLETION_REFUSALS, refuse_unhonoured


class CompletionJob(Job):
    def __init__(self, chat_model: ChatModel, request: CompletionRequest, model_name: str) -> None:
        super().__init__(chat_model)
        refuse_unhonoured(request, COMPLETION_REFUSALS)
        self.request = request
        self.model_name = model_name
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = now()
        self.prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        for prompt in self.prompts:  # before the request waits for a slot or is tokenized
            chat_model.refuse_huge(len(prompt))
        self.count = len(self.prompts) * request.n
        self.max_new_tokens_total = self._max_total(request.max_tokens or chat_model.defaults.max_new_tokens)
        self.formatter = LogprobFormatter(chat_model.tokenizer, chat_model.engine.stop_ids)
        self._base = {**sampling_overrides(request, chat_model.tokenizer), "logprobs": request.logprobs}

    def start(self, index: int) -> TextStream:
        self._refuse_if_cancelled()
        r = self.request
        seed = None if r.seed is None else r.seed + index % r.n
        return self._track(self.chat_model.stream_text(self.prompts[index // r.n], **self._base, seed=seed))

    def _echo(self, index: int) -> str:
        return self.prompts[index // self.request.n] if self.request.echo else ""

    def _logprobs(self, stream: TextStream, offset: int, sent: int = 0) -> tuple[dict[str, Any] | None, int]:
        """The legacy logprobs of the tokens after the first `sent` (text starting at `offset`), and the new count."""
        if self.request.logprobs is None:
            return None, sent
        entries = stream.token_logprobs[sent:]
        return self.formatter.completion(entries, offset=offset), sent + len(entries)

    def run_all(self) -> dict[str, Any]:
        """Every choice, started together so the engine can decode them side by side."""
        try:
            streams = [self.start(index) for index in range(self.count)]
            choices, prompt_tokens, completion_tokens = [], 0, 0
            for index, stream in enumerate(streams):
                text = stream.text()
                if index % self.request.n == 0:
                    prompt_tokens += stream.prompt_tokens
                completion_tokens += stream.completion_tokens
                echo = self._echo(index)
                choices.append({"index": index, "text": echo + text, "finish_reason": stream.finish_reason or "stop",
                                "logprobs": self._logprobs(stream, len(echo))[0]})
        finally:
            self.close()
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_name,
                "choices": choices, "usage": usage(prompt_tokens, completion_tokens)}

    def chunk(self, index: int, text: str, finish_reason: str | None = None, logprobs: dict[str, Any] | None = None) -> str:
        return json.dumps({"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_name,
                           "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": logprobs}]},
                          ensure_ascii=False)

    async def events(self, first: TextStream, slot: Slot) -> AsyncIterator[str]:
        try:
            streams = [first] + [await run_in_threadpool(self.start, index) for index in range(1, self.count)]
            for index, stream in enumerate(streams):
                echo = self._echo(index)
                if echo:
                    yield self.chunk(index, echo)
                sent, offset = 0, len(echo)
                async for piece in iterate_in_threadpool(iter(stream)):
                    logprobs, sent = self._logprobs(stream, offset, sent)
                    offset += len(piece)
                    yield self.chunk(index, piece, logprobs=logprobs)
                logprobs, sent = self._logprobs(stream, offset, sent)
                yield self.chunk(index, "", stream.finish_reason or "stop", logprobs=logprobs)
            options = self.request.stream_options
            if options is not None and options.include_usage:
                prompt_tokens = sum(s.prompt_tokens for i, s in enumerate(streams) if i % self.request.n == 0)
                yield json.dumps({"id": self.id, "object": "text_completion", "created": self.created,
                                  "model": self.model_name, "choices": [],
                                  "usage": usage(prompt_tokens, sum(s.completion_tokens for s in streams))})
            yield "[DONE]"
        finally:
            self.close()
            slot.release()
