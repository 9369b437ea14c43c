"""`POST /v1/chat/completions`: one request → `n` answers, whole or streamed as server-sent events.

Streaming follows OpenAI's chunk sequence: a first chunk with the assistant role, content deltas,
a chunk with `finish_reason`, an optional usage chunk (`stream_options.include_usage`), then
`data: [DONE]`. When tools are offered the answer is generated before anything is sent, because
whether it is a tool call is only known once it is complete; it then arrives as one `tool_calls`
delta (or one content delta), so streaming clients parse tool calls as they would OpenAI's.
Images (and videos, audios) of the messages go to the model with the conversation; a model that cannot
read them is a 400 naming the model and the first such part, before any work starts.
All `n` answers start at once (the engine may decode them together); `logprobs` are reported per token.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from tunelab.data.templates.auto import AutoTemplate
from tunelab.data.templates.tools import ToolCall, get_tool_format
from tunelab.infer.chat_model import ChatModel, ChatResult, new_call_id
from tunelab.infer.engine import TextStream, TokenLogprob
from tunelab.infer.reasoning import REASONING, ReasoningSplitter
from tunelab.infer.structured import Constraint
from tunelab.serve.errors import ApiError
from tunelab.serve.job import Job, checked, sampling_overrides
from tunelab.serve.limiter import Slot
from tunelab.serve.logprobs import LogprobFormatter
from tunelab.serve.messages import Conversation, to_internal
from tunelab.serve.protocol import ChatCompletionRequest, now, usage
from tunelab.serve.request_fields import CHAT_REFUSALS, refuse_unhonoured
from tunelab.serve.tool_choice import function_call_message, plan


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


@dataclass
class Answer:
    """One finished choice: the result and its tokens' log-probabilities (empty unless asked for)."""

    result: ChatResult
    logprobs: list[TokenLogprob]


class ChatJob(Job):
    """One validated request, ready to run: the conversation, tools and sampling overrides."""

    def __init__(self, chat_model: ChatModel, request: ChatCompletionRequest, model_name: str) -> None:
        super().__init__(chat_model)
        refuse_unhonoured(request, CHAT_REFUSALS)
        self.request = request
        self.model_name = model_name
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = now()
        template = chat_model.template
        tool_format = None if isinstance(template, AutoTemplate) else get_tool_format(template.tool_format)
        conversation = to_internal(request.messages, tool_format)
        self.system, self.turns, self.files = conversation.system, conversation.turns, conversation.files
        _refuse_unreadable(chat_model, conversation, model_name)
        self.plan = plan(request, template.tool_format)
        self.tools = self.plan.tools
        # a prompt too long whatever its tokens is refused here, before it waits for a slot or is tokenized
        chat_model.refuse_huge(sum(len(t.content) for t in self.turns) + len(self.system or "")
                               + len(json.dumps(self.tools, ensure_ascii=False) if self.tools else ""))
        self.count = request.n
        per_choice = request.max_completion_tokens or request.max_tokens or chat_model.defaults.max_new_tokens
        self.max_new_tokens_total = self._max_total(per_choice)
        self.top_logprobs = (request.top_logprobs or 0) if request.logprobs else None
        self.formatter = LogprobFormatter(chat_model.tokenizer, chat_model.engine.stop_ids)
        self._base = sampling_overrides(request, chat_model.tokenizer)
        self._base["max_new_tokens"] = request.max_completion_tokens or request.max_tokens
        self._constraint_lock = threading.Lock()
        self._constraint: Constraint | None = None
        self._constraint_built = False

    def constraint(self) -> Constraint | None:
        """The answer's constraint, built and checked once (the first start; in a worker thread, as it takes time)."""
        with self._constraint_lock:
            if not self._constraint_built:
                param = ("function_call" if self.plan.legacy else "tool_choice") if self.plan.forced else "response_format"
                self._constraint = checked(self.plan.constraint(self.chat_model.tokenizer), self.chat_model.tokenizer, param)
                self._constraint_built = True
            return self._constraint

    def overrides(self, choice: int) -> dict[str, Any]:
        r = self.request
        seed = None if r.seed is None else r.seed + choice  # n choices should differ, reproducibly
        return {**self._base, "seed": seed, "logprobs": self.top_logprobs, "constraint": self.constraint()}

    def start(self, choice: int) -> TextStream:
        self._refuse_if_cancelled()
        stream = self.chat_model.stream_chat(self.turns, self.system, self.tools, **self.files, **self.overrides(choice))
        return self._track(stream)

    # -- whole answers -------------------------------------------------------------------------
    def run_all(self) -> list[Answer]:
        """Every choice, started together so the engine can decode them side by side."""
        try:
            streams = [self.start(choice) for choice in range(self.count)]
            answers = []
            for stream in streams:
                text = stream.text()
                result = self.chat_model.finish(stream, text, self.tools, split=True)
                answers.append(Answer(result, list(stream.token_logprobs)))
            return answers
        finally:
            self.close()

    def _message(self, result: ChatResult) -> tuple[dict[str, Any], str]:
        calls = result.tool_calls[:1] if self.plan.single_call else result.tool_calls
        if calls and self.plan.legacy:
            return function_call_message(calls), "function_call"
        if calls:
            return {"role": "assistant", "content": None, "tool_calls": tool_call_dicts(calls)}, result.finish_reason
        return {"role": "assistant", "content": result.text}, result.finish_reason

    def response(self, answers: list[Answer]) -> dict[str, Any]:
        choices = []
        for index, answer in enumerate(answers):
            message, finish = self._message(answer.result)
            if answer.result.reasoning is not None:
                message["reasoning_content"] = answer.result.reasoning
            logprobs = self.formatter.chat(answer.logprobs) if self.top_logprobs is not None else None
            choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": logprobs})
        prompt = answers[0].result.prompt_tokens if answers else 0
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_name,
                "choices": choices, "usage": usage(prompt, sum(a.result.completion_tokens for a in answers))}

    # -- streamed answers ----------------------------------------------------------------------
    def chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None,
              logprobs: dict[str, Any] | None = None) -> str:
        return json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model_name,
                           "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": logprobs}]},
                          ensure_ascii=False)

    def _new_logprobs(self, stream: TextStream, sent: int) -> tuple[dict[str, Any] | None, int]:
        """The log-probs of the tokens generated since `sent`, and the new count."""
        if self.top_logprobs is None:
            return None, sent
        entries = stream.token_logprobs[sent:]
        return self.formatter.chat(entries), sent + len(entries)

    async def _choice_events(self, index: int, stream: TextStream) -> AsyncIterator[str]:
        yield self.chunk(index, {"role": "assistant", "content": ""})
        if self.tools:
            text = await run_in_threadpool(stream.text)
            result = self.chat_model.finish(stream, text, self.tools, split=True)
            message, finish = self._message(result)
            logprobs, _ = self._new_logprobs(stream, 0)
            if result.reasoning:
                yield self.chunk(index, {"reasoning_content": result.reasoning})
            if "tool_calls" in message:
                yield self.chunk(index, {"tool_calls": [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]})
            elif "function_call" in message:
                yield self.chunk(index, {"function_call": message["function_call"]})
            elif result.text:
                yield self.chunk(index, {"content": result.text}, logprobs=logprobs)
        else:
            splitter = self.chat_model.reasoning_splitter()
            sent = 0
            async for piece in iterate_in_threadpool(iter(stream)):
                for delta in _deltas(splitter, piece):
                    logprobs, sent = self._new_logprobs(stream, sent)
                    yield self.chunk(index, delta, logprobs=logprobs)
            for delta in _deltas(splitter, None):
                logprobs, sent = self._new_logprobs(stream, sent)
                yield self.chunk(index, delta, logprobs=logprobs)
            finish = stream.finish_reason or "stop"
        yield self.chunk(index, {}, finish)

    async def events(self, first: TextStream, slot: Slot) -> AsyncIterator[str]:
        """The SSE data lines; holds `slot` until the last answer is done or the client leaves."""
        try:
            streams = [first] + [await run_in_threadpool(self.start, index) for index in range(1, self.count)]
            for index, stream in enumerate(streams):
                async for line in self._choice_events(index, stream):
                    yield line
            options = self.request.stream_options
            if options is not None and options.include_usage:
                yield json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                  "model": self.model_name, "choices": [],
                                  "usage": usage(first.prompt_tokens, sum(s.completion_tokens for s in streams))})
            yield "[DONE]"
        finally:
            self.close()
            slot.release()
