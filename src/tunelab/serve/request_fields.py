"""THE FIELD TABLE of the API: what tunelab does with each request field, and the refusals.

Every top-level field of OpenAI's chat and completions requests is honoured, accepted because by its own
definition it never changes an answer (`user`, `metadata`, the prompt-cache hints, `prediction`: see
`protocol.ChatCompletionRequest`), or refused with a 400 naming it (`CHAT_REFUSALS`, `COMPLETION_REFUSALS`)
when a request gives it a value tunelab cannot honour. A field OpenAI does not
define is refused too, with the closest known name (a typo such as `max_token` must not pass silently).
Text that is not valid Unicode (a lone UTF-16 surrogate such as "\\ud83d", which JSON can carry) is a 400
naming where it is, instead of failing deep inside a tokenizer.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tunelab.serve.errors import ApiError


@dataclass(frozen=True)
class Refusal:
    """A field whose value tunelab cannot honour: `refused(request)` says when, `message` what to do instead."""

    field: str
    refused: Callable[[Any], bool]
    message: str


CHAT_REFUSALS: tuple[Refusal, ...] = (
    Refusal("audio", lambda r: r.audio is not None, "audio output is not served; tunelab answers in text, leave `audio` out."),
    Refusal("modalities", lambda r: r.modalities not in (None, ["text"]),
            'only ["text"] is served; tunelab answers in text.'),
    Refusal("store", lambda r: bool(r.store), "tunelab does not store completions; leave `store` out or false."),
    Refusal("service_tier", lambda r: r.service_tier not in (None, "auto", "default"),
            "a local server has one tier; send 'auto' or 'default', or leave it out."),
    Refusal("reasoning_effort", lambda r: r.reasoning_effort is not None,
            "tunelab cannot set how long a model thinks; leave it out (thinking follows the server's enable_thinking)."),
    Refusal("verbosity", lambda r: r.verbosity is not None, "tunelab cannot set answer verbosity; leave it out."),
    Refusal("web_search_options", lambda r: r.web_search_options is not None, "tunelab does not search the web."),
    Refusal("moderation", lambda r: r.moderation is not None, "tunelab runs no moderation model; leave it out."),
    Refusal("top_logprobs", lambda r: r.top_logprobs is not None and not r.logprobs,
            "top_logprobs needs logprobs: true."),
    Refusal("functions", lambda r: r.functions is not None and r.tools is not None,
            "send `tools` or the legacy `functions`, not both."),
    Refusal("function_call", lambda r: r.function_call is not None and r.tool_choice is not None,
            "send `tool_choice` or the legacy `function_call`, not both."),
    Refusal("response_format", lambda r: r.response_format is not None and r.response_format.type == "json_schema"
            and (r.response_format.json_schema is None or r.response_format.json_schema.schema_ is None),
            'type json_schema needs {"json_schema": {"name": ..., "schema": {...}}}.'),
)

COMPLETION_REFUSALS: tuple[Refusal, ...] = (
    Refusal("suffix", lambda r: bool(r.suffix), "insertion (a suffix) is not supported; tunelab continues the prompt."),
    Refusal("best_of", lambda r: r.best_of is not None and r.best_of != r.n,
            "best_of must equal n: tunelab returns every candidate it generates and does not rank them."),
    Refusal("echo", lambda r: bool(r.echo) and r.logprobs is not None,
            "echo with logprobs needs the prompt's log-probabilities, which tunelab does not compute; send one of the two."),
)


def refuse_unhonoured(request: BaseModel, refusals: tuple[Refusal, ...]) -> None:
    """A 400 for the first field tunelab does not know, or cannot honour with the value given."""
    known = sorted(type(request).model_fields)
    for name in request.model_extra or {}:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else "; docs/inference.md lists the fields this server takes."
        raise ApiError(400, f"{name}: not a field of this request{hint}", param=name, code="unknown_parameter")
    for rule in refusals:
        if rule.refused(request):
            raise ApiError(400, f"{rule.field}: {rule.message}", param=rule.field, code="unsupported_parameter")
    refuse_invalid_text(request)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, path)
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def refuse_invalid_text(request: BaseModel) -> None:
    """A 400 naming the first string that is not valid Unicode (a lone surrogate cannot be encoded)."""
    for path, text in _strings(request.model_dump(by_alias=True, exclude_none=True), ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ApiError(400, f"{path}: invalid text at character {error.start} (a lone UTF-16 surrogate, "
                           f"{text[error.start]!a}); send valid UTF-8, e.g. a whole surrogate pair.",
                           param=path, code="invalid_text") from None
