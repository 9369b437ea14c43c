"""Every request field is honoured or refused (serve/request_fields.py), walked from the `openai` package's own
typed request params; the refusals name their field; honoured fields reach the engine as SamplingParams.
The scripted engine (`_serve_fakes.py`) answers, so this costs no model time."""

from __future__ import annotations

import sys
import typing
from typing import Any

import pytest

openai = pytest.importorskip("openai")
from openai.types import completion_create_params  # noqa: E402
from openai.types.chat import completion_create_params as chat_create_params  # noqa: E402

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
HI = [{"role": "user", "content": "hi"}]

#: one value per field of OpenAI's chat request, and whether tunelab answers it (True) or refuses it (False)
CHAT_SAMPLES: dict[str, tuple[Any, bool]] = {
    "audio": ({"voice": "alloy", "format": "wav"}, False),
    "frequency_penalty": (0.5, True),
    "function_call": ("auto", True),
    "functions": ([WEATHER["function"]], True),
    "logit_bias": ({"15": -100}, True),
    "logprobs": (True, True),
    "max_completion_tokens": (5, True),
    "max_tokens": (5, True),
    "metadata": ({"team": "a"}, True),
    "modalities": (["text", "audio"], False),
    "moderation": ({"model": "omni-moderation-latest"}, False),
    "n": (2, True),
    "parallel_tool_calls": (False, True),
    "prediction": ({"type": "content", "content": "hello"}, True),
    "presence_penalty": (0.5, True),
    "prompt_cache_key": ("k1", True),
    "prompt_cache_options": ({}, True),
    "prompt_cache_retention": ("24h", True),
    "reasoning_effort": ("low", False),
    "response_format": ({"type": "json_object"}, True),
    "safety_identifier": ("user-1", True),
    "seed": (1, True),
    "service_tier": ("priority", False),
    "stop": (["zzz"], True),
    "store": (True, False),
    "stream_options": ({"include_usage": True}, True),
    "temperature": (0.5, True),
    "tool_choice": ("none", True),
    "tools": ([WEATHER], True),
    "top_logprobs": (2, False),  # without logprobs: true
    "top_p": (0.5, True),
    "user": ("user-1", True),
    "verbosity": ("low", False),
    "web_search_options": ({}, False),
}
COMPLETION_SAMPLES: dict[str, tuple[Any, bool]] = {
    "best_of": (2, False),  # more than n
    "echo": (True, True),
    "frequency_penalty": (0.5, True),
    "logit_bias": ({"15": -100}, True),
    "logprobs": (1, True),
    "max_tokens": (5, True),
    "n": (2, True),
    "presence_penalty": (0.5, True),
    "seed": (1, True),
    "stop": (["zzz"], True),
    "stream_options": ({"include_usage": True}, True),
    "suffix": ("the end", False),
    "temperature": (0.5, True),
    "top_p": (0.5, True),
    "user": ("user-1", True),
}


def _fields(params: Any) -> set[str]:
    return set(typing.get_type_hints(params.CompletionCreateParamsBase, include_extras=False)) - {"model", "messages",
                                                                                                     "prompt"}


@pytest.fixture
def fake(make_chat_model: Any, serve: Any) -> tuple[Any, Any]:
    chat_model = make_chat_model()
    live = serve(chat_model)
    return chat_model, openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0, timeout=60)


def _outcome(call: Any, field: str) -> bool:
    """True when answered; False when refused with a 400 naming `field` (anything else fails)."""
    try:
        reply = call()
        list(reply) if isinstance(reply, openai.Stream) else None
        return True
    except openai.BadRequestError as error:
        assert error.param == field, (field, error.message)
        assert field in error.message
        return False


def test_every_chat_field_is_honoured_or_refused_by_name(fake: tuple[Any, Any]) -> None:
    _, client = fake
    assert _fields(chat_create_params) == set(CHAT_SAMPLES)  # a new OpenAI field must be classified here
    for field, (value, honoured) in CHAT_SAMPLES.items():
        outcome = _outcome(lambda f=field, v=value: client.chat.completions.create(model="m", messages=HI, **{f: v}), field)
        assert outcome is honoured, field
    assert _outcome(lambda: client.chat.completions.create(model="m", messages=HI, stream=True), "stream")


def test_every_completions_field_is_honoured_or_refused_by_name(fake: tuple[Any, Any]) -> None:
    _, client = fake
    assert _fields(completion_create_params) == set(COMPLETION_SAMPLES)
    for field, (value, honoured) in COMPLETION_SAMPLES.items():
        outcome = _outcome(lambda f=field, v=value: client.completions.create(model="m", prompt="Once", **{f: v}), field)
        assert outcome is honoured, field
    assert not _outcome(lambda: client.completions.create(model="m", prompt="Once", echo=True, logprobs=1), "echo")


def test_unknown_fields_are_refused_with_the_closest_name(fake: tuple[Any, Any]) -> None:
    _, client = fake
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="m", messages=HI, extra_body={"max_token": 5})
    assert refused.value.param == "max_token" and "did you mean 'max_tokens'" in refused.value.message
    with pytest.raises(openai.BadRequestError) as wide:
        client.chat.completions.create(model="m", messages=HI, logprobs=True, top_logprobs=50)
    assert wide.value.param == "top_logprobs"


def test_honoured_fields_reach_the_engine(fake: tuple[Any, Any]) -> None:
    chat_model, client = fake
    client.chat.completions.create(model="m", messages=HI, presence_penalty=0.5, frequency_penalty=-0.25,
                                   logit_bias={"15": -100, "7": 3}, logprobs=True, top_logprobs=4,
                                   extra_body={"do_sample": False, "repetition_penalty": 1.2, "top_k": 7})
    params = chat_model.engine.last_params
    assert (params.presence_penalty, params.frequency_penalty, params.logit_bias) == (0.5, -0.25, ((15, -100.0), (7, 3.0)))
    assert (params.logprobs, params.do_sample, params.greedy, params.repetition_penalty, params.top_k) == (4, False, True, 1.2, 7)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    client.chat.completions.create(model="m", messages=HI, response_format={
        "type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert chat_model.engine.last_params.constraint.schema == schema
    client.completions.create(model="m", prompt="Once", logprobs=2, presence_penalty=1.0)
    assert (chat_model.engine.last_params.logprobs, chat_model.engine.last_params.presence_penalty) == (2, 1.0)


def test_tool_choice_must_name_an_offered_tool_and_required_needs_tools(fake: tuple[Any, Any]) -> None:
    _, client = fake
    cases = [({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "send_mail"}}}, "send_mail"),
             ({"tool_choice": "required"}, "offers no tools"),
             ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "offers no tools"),
             ({"functions": [WEATHER["function"]], "function_call": {"name": "nope"}}, "nope")]
    for options, words in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="m", messages=HI, **options)
        param = "function_call" if "functions" in options else "tool_choice"
        assert refused.value.param == param and words in refused.value.message, options


def test_legacy_functions_answer_with_function_call(fake: tuple[Any, Any]) -> None:
    _, client = fake
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Weather?"}],
                                           functions=[WEATHER["function"]])
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    assert choice.message.function_call.name == "get_weather"
    assert choice.message.function_call.arguments == '{"city": "Paris"}'


def test_response_format_without_the_grammar_library_names_the_extra(fake: tuple[Any, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, client = fake
    monkeypatch.setitem(sys.modules, "llguidance", None)  # as if not installed: importing it fails
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="m", messages=HI, response_format={"type": "json_object"})
    assert refused.value.param == "response_format"
    assert "response_format needs the `api` extra" in refused.value.message and "tunelab[api]" in refused.value.message


def test_a_schema_the_grammar_cannot_enforce_is_a_400(fake: tuple[Any, Any]) -> None:
    pytest.importorskip("llguidance")
    _, client = fake
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="m", messages=HI, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wat"}}})
    assert refused.value.param == "response_format" and "wat" in refused.value.message
