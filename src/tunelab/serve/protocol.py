"""Request and response shapes of the OpenAI API subset tunelab serves (pydantic models).

Requests are validated here, so a wrong type or an out-of-range value is a 400 naming the field
before any generation starts. Unknown request fields are ignored, as OpenAI-compatible servers do,
so newer clients that send extra options keep working.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Request(BaseModel):
    """OpenAI clients send fields tunelab does not implement (logprobs, presence_penalty, ...): they are
    accepted, as the protocol expects, but never dropped silently: the server log names them."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _report_ignored(self) -> _Request:
        if self.model_extra:
            logger.warning("%s: ignoring fields tunelab does not support: %s", type(self).__name__,
                           ", ".join(sorted(self.model_extra)))
        return self


logger = logging.getLogger("tunelab.serve")


class FunctionCall(_Request):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Request):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class MediaUrl(_Request):
    """`image_url` / `video_url` of a content part: a `data:` URL, a local path or a `file://` URL."""

    url: str
    detail: str | None = None  # OpenAI's resolution hint; the model's processor decides the size here


class InputAudio(_Request):
    """`input_audio` of a content part: base64 audio and its format."""

    data: str
    format: str | None = None


class ContentPart(_Request):
    type: str
    text: str | None = None
    image_url: MediaUrl | str | None = None  # some clients send the URL itself
    video_url: MediaUrl | str | None = None
    input_audio: InputAudio | None = None


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(_Request):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDefinition(_Request):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Request):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=16)
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # torch's seed range (64 bits)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    # every prompt must have text: an empty one has no tokens to continue (refused up front, before streaming starts)
    prompt: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class ScoreRequest(_Request):
    model: str | None = None
    messages: list[str] = Field(min_length=1)
    max_length: int | None = Field(default=None, ge=1)


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
