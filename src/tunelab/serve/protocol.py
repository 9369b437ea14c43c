"""Request and response shapes of the OpenAI API subset tunelab serves (pydantic models).

Requests are validated here, so a wrong type or an out-of-range value is a 400 naming the field
before any generation starts. Every top-level field of OpenAI's chat and completions requests is
declared: tunelab honours it, or `serve/request_fields.py` refuses it with a 400 naming it. A field
OpenAI does not define either is refused too (naming the closest known one), because accepting it
would mean ignoring it. Nested objects (messages, tools) stay lenient: clients echo back response
fields (`refusal`, `annotations`) inside messages, and those are logged, not refused.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger("tunelab.serve")


class _Part(BaseModel):
    """A nested object: unknown keys are accepted (clients echo response fields back) and logged."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _report_ignored(self) -> _Part:
        extra = {k for k, v in (self.model_extra or {}).items() if v is not None}
        if extra:
            logger.warning("%s: ignoring fields tunelab does not support: %s", type(self).__name__,
                           ", ".join(sorted(extra)))
        return self


class FunctionCall(_Part):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Part):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class MediaUrl(_Part):
    """`image_url` / `video_url` of a content part: a `data:` URL, a local path or a `file://` URL."""

    url: str
    detail: str | None = None  # OpenAI's resolution hint; the model's processor decides the size here


class InputAudio(_Part):
    """`input_audio` of a content part: base64 audio and its format."""

    data: str
    format: str | None = None


class ContentPart(_Part):
    type: str
    text: str | None = None
    image_url: MediaUrl | str | None = None  # some clients send the URL itself
    video_url: MediaUrl | str | None = None
    input_audio: InputAudio | None = None


class ChatMessage(_Part):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    function_call: FunctionCall | None = None  # the legacy `functions` protocol's call
    tool_call_id: str | None = None


class FunctionDefinition(_Part):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # the arguments always match `parameters` when tool_choice forces a call


class ToolDefinition(_Part):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class StreamOptions(_Part):
    include_usage: bool = False


class JsonSchemaFormat(_Part):
    name: str = Field(default="response", min_length=1)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Part):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _Request(BaseModel):
    """A top-level request: unknown fields are kept (`model_extra`) so the route can refuse them by name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


LogitBias = dict[Annotated[str, Field(pattern=r"^\d{1,10}$")], Annotated[float, Field(ge=-100, le=100)]]


class SamplingRequest(_Request):
    """The fields chat and completions requests share (sampling, penalties, bias, the anchor's extras)."""

    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=16)
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # torch's seed range (64 bits)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: LogitBias | None = None  # token id (as a string, OpenAI's JSON) -> bias
    user: str | None = None  # an end-user id for the caller's own abuse tracking; never changes an answer
    # the anchor's (LLaMA-Factory) request fields, and top_k as vLLM's server takes it
    do_sample: bool | None = None  # false: greedy decoding whatever temperature says
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    top_k: int | None = Field(default=None, ge=1)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDefinition] | None = None  # legacy form of `tools`
    function_call: Literal["none", "auto"] | dict[str, Any] | None = None  # legacy form of `tool_choice`
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # accepted: by OpenAI's definition none of these changes what the model writes
    metadata: dict[str, str] | None = None  # tags of a stored completion (none is stored: store stays false)
    store: bool | None = None  # true is refused
    service_tier: str | None = None  # "auto" / "default": the one tier a local server has; others refused
    safety_identifier: str | None = None  # an end-user id for the caller's abuse tracking
    prompt_cache_key: str | None = None  # prompt-cache routing hint
    prompt_cache_retention: str | None = None  # prompt-cache lifetime hint
    prompt_cache_options: dict[str, Any] | None = None  # prompt-cache settings
    prediction: dict[str, Any] | None = None  # predicted output: only speeds decoding up, the answer is the same
    modalities: list[str] | None = None  # ["text"]; audio is refused
    # refused unless left out (request_fields.py)
    audio: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None


class CompletionRequest(SamplingRequest):
    # every prompt must have text: an empty one has no tokens to continue (refused up front, before streaming starts)
    prompt: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(default=None, ge=1, le=16)
    suffix: str | None = None


class ScoreRequest(_Part):
    model: str | None = None
    messages: list[str] = Field(min_length=1)
    max_length: int | None = Field(default=None, ge=1)


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
