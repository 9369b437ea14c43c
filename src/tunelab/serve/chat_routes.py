"""`POST /v1/chat/completions`: one request → `n` answers, whole or streamed as server-sent events.

Streaming follows OpenAI's chunk sequence: a first chunk with the assistant role, content deltas,
a chunk with `finish_reason`, an optional usage chunk (`stream_options.include_usage`), then
`data: [DONE]`. When tools are offered the answer is generated before anything is sent, because
whether it is a tool call is only known once it is complete; it then arrives as one `tool_calls`
delta (or one content delta), so streaming clients parse tool calls as they would OpenAI's.
Images (and videos, audios) of the messages go to the model with the conversation; a model that cannot
read them is a 400 naming the model and the first such part, before any work starts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from tunelab.data.templates.tools import ToolCall
from tunelab.infer.chat_model import ChatModel, ChatResult, new_call_id
from tunelab.infer.engine import TextStream
from tunelab.infer.reasoning import REASONING, ReasoningSplitter
from tunelab.serve.errors import ApiError
from tunelab.serve.limiter import Slot
from tunelab.serve.messages import Conversation, to_internal
from tunelab.serve.protocol import ChatCompletionRequest, now, usage


def tool_call_dicts(calls: list[ToolCall], *, with_index: bool = False) -> list[dict[str, Any]]:
    out = []
    for index, call in enumerate(calls):
        arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, ensure_ascii=False)
        item: dict[str, Any] = {"id": new_call_id(), "type": "function", "function": {"name": call.name, "arguments": arguments}}
        out.append({"index": index, **item} if with_index else item)
    return out


def _deltas(splitter: ReasoningSplitter | None, piece: str | None) -> list[dict[str, str]]:
    """Chunk deltas of one streamed piece (None: the end), thinking as `reasoning_content`."""
    if splitter is None:
        return [{"content": piece}] if piece else []
    parts = splitter.flush() if piece is None else splitter.feed(piece)
    return [{"reasoning_content" if kind == REASONING else "content": text} for kind, text in parts]


def _refuse_unreadable(chat_model: ChatModel, conversation: Conversation, model_name: str) -> None:
    """A 400 for media the served model cannot read, naming the model and the first such part."""
    for column, where in conversation.first_part.items():
        if chat_model.reads(column):
            continue
        readable = [c for c in conversation.files if chat_model.reads(c)]
        what = f"it reads text and {', '.join(readable)}" if readable else "it reads text only"
        raise ApiError(400, f"{where}: model '{model_name}' cannot read {column} ({what}); send text, or serve a "
                       "multimodal model (docs/multimodal.md).", param=where.replace("[", ".").replace("]", ""),
                       code="unsupported_media")


class ChatJob:
    """One validated request, ready to run: the conversation, tools and sampling overrides."""

    def __init__(self, chat_model: ChatModel, request: ChatCompletionRequest, model_name: str) -> None:
        self.chat_model = chat_model
        self.request = request
        self.model_name = model_name
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = now()
        conversation = to_internal(request.messages)
        self.system, self.turns, self.files = conversation.system, conversation.turns, conversation.files
        _refuse_unreadable(chat_model, conversation, model_name)
        offered = request.tools and request.tool_choice != "none"
        self.tools = [tool.model_dump(exclude_none=True) for tool in request.tools] if offered else None

    def overrides(self, choice: int) -> dict[str, Any]:
        r = self.request
        seed = None if r.seed is None else r.seed + choice  # n choices should differ, reproducibly
        return {"max_new_tokens": r.max_completion_tokens or r.max_tokens, "temperature": r.temperature,
                "top_p": r.top_p, "seed": seed, "stop": r.stop_list() or None}

    def start(self, choice: int) -> TextStream:
        return self.chat_model.stream_chat(self.turns, self.system, self.tools, **self.files, **self.overrides(choice))

    # -- whole answers -------------------------------------------------------------------------
    def run_all(self) -> list[ChatResult]:
        results = []
        for choice in range(self.request.n):
            stream = self.start(choice)
            try:
                text = stream.text()
            finally:
                stream.close()
            results.append(self.chat_model.finish(stream, text, self.tools, split=True))
        return results

    def response(self, results: list[ChatResult]) -> dict[str, Any]:
        choices = []
        for index, result in enumerate(results):
            message: dict[str, Any] = {"role": "assistant", "content": result.text}
            if result.tool_calls:
                message = {"role": "assistant", "content": None, "tool_calls": tool_call_dicts(result.tool_calls)}
            if result.reasoning is not None:
                message["reasoning_content"] = result.reasoning
            choices.append({"index": index, "message": message, "finish_reason": result.finish_reason, "logprobs": None})
        prompt = results[0].prompt_tokens if results else 0
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_name,
                "choices": choices, "usage": usage(prompt, sum(r.completion_tokens for r in results))}

    # -- streamed answers ----------------------------------------------------------------------
    def chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model_name,
                           "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]},
                          ensure_ascii=False)

    async def events(self, first: TextStream, slot: Slot) -> AsyncIterator[str]:
        """The SSE data lines; holds `slot` until the last answer is done or the client leaves."""
        streams = [first]
        prompt_tokens = first.prompt_tokens
        completion_tokens = 0
        try:
            for index in range(self.request.n):
                stream = streams[-1] if index == 0 else await run_in_threadpool(self.start, index)
                if index:
                    streams.append(stream)
                yield self.chunk(index, {"role": "assistant", "content": ""})
                if self.tools:
                    text = await run_in_threadpool(stream.text)
                    result = self.chat_model.finish(stream, text, self.tools, split=True)
                    if result.reasoning:
                        yield self.chunk(index, {"reasoning_content": result.reasoning})
                    if result.tool_calls:
                        yield self.chunk(index, {"tool_calls": tool_call_dicts(result.tool_calls, with_index=True)})
                    elif result.text:
                        yield self.chunk(index, {"content": result.text})
                    finish = result.finish_reason
                else:
                    splitter = self.chat_model.reasoning_splitter()
                    async for piece in iterate_in_threadpool(iter(stream)):
                        for delta in _deltas(splitter, piece):
                            yield self.chunk(index, delta)
                    for delta in _deltas(splitter, None):
                        yield self.chunk(index, delta)
                    finish = stream.finish_reason or "stop"
                completion_tokens += stream.completion_tokens
                yield self.chunk(index, {}, finish)
            options = self.request.stream_options
            if options is not None and options.include_usage:
                yield json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                  "model": self.model_name, "choices": [],
                                  "usage": usage(prompt_tokens, completion_tokens)})
            yield "[DONE]"
        finally:
            for stream in streams:
                stream.close()
            slot.release()
