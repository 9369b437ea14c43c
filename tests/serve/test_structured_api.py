"""Request options that act on the model's scores, through the official `openai` client against a real tiny
random Qwen2 on the hf engine: response_format (the answer validates with `jsonschema`), forced tool calls,
logprobs (they add up to the log-probability the model gives the returned tokens), logit_bias, do_sample."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _serve_fakes import LiveServer

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("llguidance")

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
                   "ok": {"type": "boolean"}},
    "required": ["name", "age", "ok"],
    "additionalProperties": False,
}
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}}, "required": ["city"],
        "additionalProperties": False}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": CITY}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time", "parameters": {
        "type": "object", "properties": {"zone": {"enum": ["utc", "cet"]}}, "required": ["zone"],
        "additionalProperties": False}}},
]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The chat model and a live server over it (the hf engine decodes the choices of a request together)."""
    from tunelab.config.parser import parse_config
    from tunelab.infer.loader import load_chat_model
    from tunelab.serve.app import create_app
    from tunelab.serve.settings import ServerSettings
    from tunelab.testing import TinyModelSpec, build_tiny_model

    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=False)
    model_dir: Path = build_tiny_model(tmp_path_factory.mktemp("tiny-api"), family="qwen2", spec=spec, seed=3)
    chat_model = load_chat_model(parse_config([f"model_name_or_path={model_dir}", "template=qwen", "max_new_tokens=64"]))
    with LiveServer(create_app(chat_model, ServerSettings(max_concurrent=2))) as live:
        yield chat_model, openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0, timeout=120)


def test_json_schema_answers_validate(served: tuple[Any, Any]) -> None:
    _, client = served
    reply = client.chat.completions.create(
        model="m", messages=HI, n=2, temperature=1.0, seed=5, max_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
    )
    for choice in reply.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), PERSON)


def test_json_object_ends_where_the_object_does(served: tuple[Any, Any]) -> None:
    chat_model, client = served
    tok = chat_model.tokenizer
    # biased towards "}" and "{}": unconstrained, the answer would be "{}}}}..." up to max_tokens
    bias = {str(tok.encode(text, add_special_tokens=False)[0]): 100 for text in ("}", "{}")}
    reply = client.chat.completions.create(model="m", messages=HI, response_format={"type": "json_object"},
                                           logit_bias=bias, max_tokens=20, temperature=0)
    assert reply.choices[0].finish_reason == "stop"
    assert json.loads(reply.choices[0].message.content) == {}


def test_named_tool_choice_always_calls_that_tool(served: tuple[Any, Any]) -> None:
    _, client = served
    reply = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "what time is it?"}], tools=TOOLS, n=3, temperature=1.0,
        seed=1, max_tokens=60, tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    for choice in reply.choices:
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), CITY)


def test_required_tool_choice_streams_a_call_of_an_offered_tool(served: tuple[Any, Any]) -> None:
    _, client = served
    chunks = list(client.chat.completions.create(model="m", messages=HI, tools=TOOLS, tool_choice="required",
                                                 temperature=1.0, seed=2, max_tokens=60, stream=True))
    calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name in {"get_weather", "get_time"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def _sequence_logprob(chat_model: Any, prompt: list[int], answer: list[int]) -> float:
    import torch

    model = chat_model.engine.model
    ids = torch.tensor([prompt + answer])
    with torch.inference_mode():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
    return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None]).sum())


def test_logprobs_add_up_to_the_models_probability_of_the_answer(served: tuple[Any, Any]) -> None:
    from tunelab.data.conversation import Message, Role

    chat_model, client = served
    reply = client.chat.completions.create(model="m", messages=HI, max_tokens=8, temperature=0, logprobs=True,
                                           top_logprobs=3)
    choice = reply.choices[0]
    content = choice.logprobs.content
    assert "".join(entry.token for entry in content) == choice.message.content
    for entry in content:  # greedy: the chosen token is the most likely one, listed first
        assert len(entry.top_logprobs) == 3 and entry.top_logprobs[0].token == entry.token
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)
        assert [t.logprob for t in entry.top_logprobs] == sorted((t.logprob for t in entry.top_logprobs), reverse=True)
    prompt = chat_model.prompt_ids([Message(Role.USER, "hi")])
    answer = chat_model.tokenizer.encode(choice.message.content, add_special_tokens=False)
    total = sum(entry.logprob for entry in content)
    assert len(answer) == len(content) and total == pytest.approx(_sequence_logprob(chat_model, prompt, answer), abs=1e-3)

    streamed = list(client.chat.completions.create(model="m", messages=HI, max_tokens=8, temperature=0, logprobs=True,
                                                   stream=True))
    entries = [e for c in streamed if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in entries] == [e.token for e in content]
    assert math.isclose(sum(e.logprob for e in entries), total, abs_tol=1e-4)


def test_completion_logprobs_and_echo(served: tuple[Any, Any]) -> None:
    _, client = served
    reply = client.completions.create(model="m", prompt="The sky", max_tokens=5, temperature=0, logprobs=2)
    choice = reply.choices[0]
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text and lp.text_offset[0] == 0
    assert all(len(top) == 2 for top in lp.top_logprobs)
    assert all(max(top.values()) == pytest.approx(chosen) for top, chosen in zip(lp.top_logprobs, lp.token_logprobs))
    echoed = client.completions.create(model="m", prompt="The sky", max_tokens=5, temperature=0, echo=True)
    assert echoed.choices[0].text == "The sky" + choice.text


def test_logit_bias_keeps_the_greedy_token_out(served: tuple[Any, Any]) -> None:
    chat_model, client = served
    plain = client.chat.completions.create(model="m", messages=HI, max_tokens=6, temperature=0)
    first = chat_model.tokenizer.encode(plain.choices[0].message.content, add_special_tokens=False)[0]
    for _ in range(2):
        biased = client.chat.completions.create(model="m", messages=HI, max_tokens=6, temperature=0,
                                                logit_bias={str(first): -100})
        assert first not in chat_model.tokenizer.encode(biased.choices[0].message.content, add_special_tokens=False)


def test_do_sample_false_is_greedy_whatever_the_temperature(served: tuple[Any, Any]) -> None:
    _, client = served
    texts = {client.chat.completions.create(model="m", messages=HI, max_tokens=8, temperature=1.5,
                                            extra_body={"do_sample": False}).choices[0].message.content
             for _ in range(3)}
    assert len(texts) == 1
