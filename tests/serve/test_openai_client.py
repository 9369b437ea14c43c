"""The server driven by the official `openai` package, as users' code drives it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _serve_fakes import API_KEY

openai = pytest.importorskip("openai")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(make_chat_model: Any, serve: Any) -> Any:
    live = serve(make_chat_model(), api_key=API_KEY)
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=API_KEY, max_retries=0, timeout=30)


def test_models_list(client: Any) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    assert models.data[0].owned_by == "tunelab"
    assert client.models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_chat_non_streaming(client: Any, qwen_tokenizer: Any) -> None:
    reply = client.chat.completions.create(
        model="anything", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello. The end."
    assert choice.finish_reason == "stop"
    assert reply.model == "fake-model"
    assert reply.id.startswith("chatcmpl-")
    answer_tokens = len(qwen_tokenizer.encode("You said: hello. The end.", add_special_tokens=False))
    assert reply.usage.completion_tokens == answer_tokens + 1  # + the end-of-turn token
    prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert reply.usage.prompt_tokens == len(qwen_tokenizer.encode(prompt, add_special_tokens=False))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streaming(client: Any) -> None:
    stream = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "stream me"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 5  # token by token, not one blob
    assert "".join(pieces) == "You said: stream me. The end."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(pieces) + 1
    assert len({c.id for c in chunks}) == 1


def test_tool_call_parsed_into_tool_calls(client: Any) -> None:
    reply = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_call_streaming(client: Any) -> None:
    chunks = list(client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL], stream=True
    ))
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.function.name, json.loads(d.function.arguments)) for d in deltas] == [
        (0, "get_weather", {"city": "Paris"})
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not any(c.choices[0].delta.content for c in chunks)


def test_tool_result_round_trip(client: Any) -> None:
    reply = client.chat.completions.create(
        model="fake-model",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
        ],
    )
    assert reply.choices[0].message.content == "Tool said: sunny, 21 C."
    assert reply.choices[0].finish_reason == "stop"


def test_tool_choice_none_offers_no_tools(client: Any) -> None:
    reply = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert reply.choices[0].message.content == "You said: hi. The end."


def test_stop_sequences(client: Any) -> None:
    reply = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hello"}], stop=["The end", "never"]
    )
    assert reply.choices[0].message.content == "You said: hello. "
    assert reply.choices[0].finish_reason == "stop"
    long_stop = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "a long stop string here"}], stop="string here. The end"
    )
    assert long_stop.choices[0].message.content == "You said: a long stop "
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hello"}], stop="hello.", stream=True)
        if c.choices]
    assert "".join(pieces) == "You said: "


def test_max_tokens_and_max_completion_tokens(client: Any) -> None:
    for key in ("max_tokens", "max_completion_tokens"):
        reply = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hello"}], **{key: 3}
        )
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 3
        assert reply.choices[0].message.content == "You said:"


def test_n_choices_and_sampling_fields(client: Any, make_chat_model: Any) -> None:
    reply = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "x"}], n=2, temperature=0.3, top_p=0.9, seed=7
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content == "You said: x. The end." for c in reply.choices)
    assert reply.usage.completion_tokens == 2 * (reply.usage.completion_tokens // 2)


def test_completions_plain_text(client: Any) -> None:
    reply = client.completions.create(model="fake-model", prompt="Once upon a time", max_tokens=50)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == " and so on, and so on."
    assert reply.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="fake-model", prompt=["a", "b"], max_tokens=3, stream=True))
    assert streamed == " and so on" * 2


def test_wrong_api_key_is_401(client: Any, make_chat_model: Any) -> None:
    bad = openai.OpenAI(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401
    assert info.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "seed": 2**70}, "seed"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": ["x"] * 17}, "stop"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]}, "messages.1.role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages.0.content"),
    ],
)
def test_bad_requests_are_400(client: Any, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="fake-model", **kwargs)
    assert info.value.status_code == 400
    assert info.value.body["type"] == "invalid_request_error"
    assert info.value.body["param"].startswith(param)


def test_reasoning_model_thinking_is_reasoning_content(make_chat_model: Any, serve: Any) -> None:
    live = serve(make_chat_model(template_name="qwen3"))
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "think: why?"}]
    message = client.chat.completions.create(model="m", messages=messages).choices[0].message
    assert message.content == "Done."
    assert message.model_extra["reasoning_content"] == "Let me see."
    chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "Let me see."
    assert "".join(d.content or "" for d in deltas) == "Done."


def test_non_reasoning_template_keeps_text_as_is(client: Any) -> None:
    message = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "think: why?"}]).choices[0].message
    assert message.content == "<think>\nLet me see.\n</think>\n\nDone."
    assert "reasoning_content" not in (message.model_extra or {})
