"""A chat model: an engine plus the template that turns conversations into prompts and answers
back into text or tool calls. `chat`, `webchat` and `api` all talk to this one class.

Tool calls are parsed with the template's tool format (the one the model was trained on), so an
answer like `<tool_call>{...}</tool_call>` (Qwen) or `Action: ...` (default) becomes structured
`ToolCall`s, which the API reports as OpenAI `tool_calls`.

A multimodal model comes with its `MediaEncoding` (processor, placeholders, media keys): conversations
may then carry images, videos or audios with `<image>` markers in their text (`infer/media_prompt.py`
holds the rules), and the engine is given the media beside the prompt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tunelab.data.conversation import Message
from tunelab.data.encode import encode_prompt
from tunelab.data.templates.base import Template
from tunelab.data.templates.tools import ToolCall, get_tool_format, normalize_tools
from tunelab.errors import UserError
from tunelab.infer.engine import Engine, PromptMedia, TextStream
from tunelab.infer.params import SamplingParams
from tunelab.infer.reasoning import ReasoningSplitter, split_reasoning, splitter_for

if TYPE_CHECKING:
    from tunelab.data.encode_media import MediaEncoding


@dataclass
class ChatResult:
    """One finished answer: its text, or the tool calls it makes, and token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None  # the thinking block of reasoning templates, apart from `text`


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ChatModel:
    def __init__(
        self,
        engine: Engine,
        template: Template,
        defaults: SamplingParams,
        *,
        name: str = "tunelab",
        enable_thinking: bool = True,
        scorer: Any = None,
        media: MediaEncoding | None = None,
    ) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.template = template
        self.defaults = defaults
        self.name = name
        self.enable_thinking = enable_thinking
        self.scorer = scorer  # a RewardScorer when the model is a reward model (stage: rm)
        self.media = media  # the processor side of a multimodal model; None: the model reads text only

    def reads(self, column: str) -> bool:
        """Whether the model takes media of a column ("images", "videos", "audios")."""
        from tunelab.data.media import MARKERS

        return self.media is not None and MARKERS[column] in self.media.placeholders

    def params(self, **overrides: Any) -> SamplingParams:
        """The model's defaults with one request's settings on top."""
        return self.defaults.with_overrides(**overrides)

    def prompt_ids(self, messages: Sequence[Message], system: str | None = None, tools: Any = None) -> list[int]:
        if not messages:
            raise UserError("messages: at least one message is needed")
        return encode_prompt(
            self.tokenizer, self.template, messages, system=system, tools=tools, enable_thinking=self.enable_thinking
        )

    @cached_property
    def longest_token_chars(self) -> int:
        """Characters the longest vocabulary entry spells (byte-level entries spell one character per byte, so
        this bounds the characters any token decodes to): a text of C characters has at least C / this tokens."""
        return max((len(token) for token in self.tokenizer.get_vocab()), default=1)

    def refuse_huge(self, characters: int) -> None:
        """Refuse, before tokenizing it, a text too long for the model whatever its tokens (a 10 MB prompt
        would otherwise be tokenized, seconds of work and gigabytes of memory, only to be refused)."""
        limit = self.engine.max_context
        if limit is None or characters <= limit * self.longest_token_chars:
            return
        raise UserError(f"the prompt has {characters} characters: more than this model's {limit} tokens can hold "
                        f"(a token spells at most {self.longest_token_chars} characters). Shorten the conversation.")

    def _fit(self, prompt_ids: list[int], params: SamplingParams) -> SamplingParams:
        """Refuse prompts the model cannot hold, and never ask for more tokens than fit after them."""
        limit = self.engine.max_context
        if limit is None:
            return params
        room = limit - len(prompt_ids)
        if room <= 0:
            raise UserError(f"the prompt has {len(prompt_ids)} tokens; this model holds at most {limit}. Shorten the conversation.")
        if params.max_new_tokens is None or params.max_new_tokens > room:
            return params.with_overrides(max_new_tokens=room)
        return params

    def prompt(
        self, messages: Sequence[Message], system: str | None = None, tools: Any = None, *,
        images: Sequence[Any] = (), videos: Sequence[Any] = (), audios: Sequence[Any] = (),
    ) -> tuple[list[int], PromptMedia | None]:
        """The prompt ids of a conversation and its media in the engine's form (None without media).

        A multimodal model encodes through its processor whenever media are given or the text writes a
        marker (a lone `<image>` would otherwise reach the model as a picture token without a picture)."""
        from tunelab.infer.media_prompt import ChatMedia, has_markers, media_prompt, refuse_text_only

        self.refuse_huge(sum(len(m.content) for m in messages) + len(system or "")
                         + (len(json.dumps(tools, ensure_ascii=False)) if tools else 0))
        media = ChatMedia.of(images, videos, audios)
        if not media and (self.media is None or not has_markers(messages)):
            return self.prompt_ids(messages, system, tools), None
        if self.media is None:
            raise refuse_text_only(self.name, media)
        if not messages:
            raise UserError("messages: at least one message is needed")
        return media_prompt(self.tokenizer, self.template, self.media, messages, media, system=system, tools=tools,
                            enable_thinking=self.enable_thinking, raw=self.engine.raw_media)

    def stream_chat(
        self, messages: Sequence[Message], system: str | None = None, tools: Any = None, *,
        images: Sequence[Any] = (), videos: Sequence[Any] = (), audios: Sequence[Any] = (), **overrides: Any,
    ) -> TextStream:
        """Start an answer to the conversation; iterate the returned stream for text pieces. `images` (and
        `videos`, `audios`): paths, `data:` URLs, bytes or PIL images, one per `<image>` marker of the text,
        in order; without any marker, one is put per picture at the start of the last user message."""
        ids, media = self.prompt(messages, system, tools, images=images, videos=videos, audios=audios)
        params = self._fit(ids, self.params(**overrides))
        if media is None:
            return self.engine.stream(ids, params)
        return self.engine.stream(ids, params, media_inputs=media)

    def stream_text(self, prompt: str, **overrides: Any) -> TextStream:
        """Continue plain text, no chat template (`/v1/completions`)."""
        self.refuse_huge(len(prompt))
        ids = list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if not ids:
            raise UserError("prompt: empty")
        return self.engine.stream(ids, self._fit(ids, self.params(**overrides)))

    def chat(
        self, messages: Sequence[Message], system: str | None = None, tools: Any = None, *,
        images: Sequence[Any] = (), videos: Sequence[Any] = (), audios: Sequence[Any] = (), **overrides: Any,
    ) -> ChatResult:
        """A whole answer; when tools were offered and the answer calls them, `tool_calls` is filled."""
        stream = self.stream_chat(messages, system, tools, images=images, videos=videos, audios=audios, **overrides)
        try:
            text = stream.text()
        finally:
            stream.close()
        return self.finish(stream, text, tools)

    def reasoning_splitter(self) -> ReasoningSplitter | None:
        """A fresh splitter of thinking and answer, for reasoning templates with thinking on."""
        return splitter_for(self.template, self.enable_thinking)

    def finish(self, stream: TextStream, text: str, tools: Any, *, split: bool = False) -> ChatResult:
        """The result of a finished stream; `split` separates a reasoning model's thinking."""
        reasoning, text = split_reasoning(text, self.reasoning_splitter()) if split else (None, text)
        calls = self.extract_tool_calls(text) if normalize_tools(tools) else None
        return ChatResult(
            reasoning=reasoning,
            text=text,
            finish_reason="tool_calls" if calls else (stream.finish_reason or "stop"),
            prompt_tokens=stream.prompt_tokens,
            completion_tokens=stream.completion_tokens,
            tool_calls=calls or [],
        )

    def extract_tool_calls(self, text: str) -> list[ToolCall] | None:
        return get_tool_format(self.template.tool_format).extract(text)
