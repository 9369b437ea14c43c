"""`POST /v1/completions`: plain-text continuation, no chat template (base models, scripts).

Each prompt of the request gets `n` choices, numbered prompt-major as OpenAI does
(`index = prompt * n + choice`); streaming sends `text_completion` chunks and `[DONE]`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import TextStream
from tunelab.serve.limiter import Slot
from tunelab.serve.protocol import CompletionRequest, now, usage


class CompletionJob:
    def __init__(self, chat_model: ChatModel, request: CompletionRequest, model_name: str) -> None:
        self.chat_model = chat_model
        self.request = request
        self.model_name = model_name
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = now()
        self.prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)

    def start(self, index: int) -> TextStream:
        r = self.request
        seed = None if r.seed is None else r.seed + index % r.n
        return self.chat_model.stream_text(self.prompts[index // r.n], max_new_tokens=r.max_tokens,
                                           temperature=r.temperature, top_p=r.top_p, seed=seed,
                                           stop=r.stop_list() or None)

    @property
    def count(self) -> int:
        return len(self.prompts) * self.request.n

    def run_all(self) -> dict[str, Any]:
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index in range(self.count):
            stream = self.start(index)
            try:
                text = stream.text()
            finally:
                stream.close()
            if index % self.request.n == 0:
                prompt_tokens += stream.prompt_tokens
            completion_tokens += stream.completion_tokens
            choices.append({"index": index, "text": text, "finish_reason": stream.finish_reason or "stop", "logprobs": None})
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_name,
                "choices": choices, "usage": usage(prompt_tokens, completion_tokens)}

    def chunk(self, index: int, text: str, finish_reason: str | None = None) -> str:
        return json.dumps({"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_name,
                           "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}]},
                          ensure_ascii=False)

    async def events(self, first: TextStream, slot: Slot) -> AsyncIterator[str]:
        streams = [first]
        try:
            for index in range(self.count):
                stream = first if index == 0 else await run_in_threadpool(self.start, index)
                if index:
                    streams.append(stream)
                async for piece in iterate_in_threadpool(iter(stream)):
                    yield self.chunk(index, piece)
                yield self.chunk(index, "", stream.finish_reason or "stop")
            yield "[DONE]"
        finally:
            for stream in streams:
                stream.close()
            slot.release()
