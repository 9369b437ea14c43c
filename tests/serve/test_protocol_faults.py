"""Protocol details: invalid text is a 400 and the same connection keeps serving; tool turns are written as
the official Qwen2.5 template writes them; completions stream a usage chunk; a huge prompt is refused by its
length before it is tokenized."""

from __future__ import annotations

import http.client
import json
from typing import Any

import httpx
import pytest

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.parametrize(("body", "param"), [
    (b'{"messages": [{"role": "user", "content": "hi \\ud83d there"}]}', "messages.0.content"),
    (b'{"messages": [{"role": "system", "content": "\\udc00"}, {"role": "user", "content": "hi"}]}', "messages.0.content"),
    (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud83d"}]}]}', "messages.0.content.0.text"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "stop": ["\\ud83d"]}', "stop.0"),
])
def test_lone_surrogates_are_a_400_and_the_connection_keeps_serving(make_chat_model: Any, serve: Any, body: bytes,
                                                                   param: str) -> None:
    live = serve(make_chat_model())
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    status, error = _post(conn, "/v1/chat/completions", body)
    assert status == 400 and error["error"]["param"] == param and error["error"]["code"] == "invalid_text"
    assert "surrogate" in error["error"]["message"]
    sock = conn.sock
    status, reply = _post(conn, "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "again"}]}')
    assert status == 200 and reply["choices"][0]["message"]["content"] == "You said: again. The end."
    assert conn.sock is sock  # the same keep-alive connection answered
    status, error = _post(conn, "/v1/completions", b'{"prompt": "\\ud83d"}')
    assert status == 400 and error["error"]["param"] == "prompt"
    conn.close()


def test_tool_turns_are_written_as_the_official_qwen_template_writes_them(make_chat_model: Any, serve: Any,
                                                                          qwen_tokenizer: Any) -> None:
    chat_model = make_chat_model()
    live = serve(chat_model)
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
             for i, c in enumerate(["Paris", "Rome"])]
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Let me check both.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy"},
    ]
    reply = httpx.post(f"{live.url}/v1/chat/completions", json={"messages": messages, "tools": [WEATHER]}, timeout=30)
    assert reply.status_code == 200
    hf_messages = [{**m, "tool_calls": [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
                                         for c in m["tool_calls"]]} if "tool_calls" in m else m for m in messages]
    official = qwen_tokenizer.apply_chat_template(hf_messages, tools=[WEATHER], tokenize=False, add_generation_prompt=True)
    assert chat_model.engine.last_prompt == official
    assert official.count("<|im_start|>user") == 2 and "Let me check both.\n<tool_call>" in official


def test_completions_stream_a_usage_chunk(make_chat_model: Any, serve: Any, qwen_tokenizer: Any) -> None:
    live = serve(make_chat_model())
    body = {"prompt": ["Once", "Twice"], "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{live.url}/v1/completions", json=body, timeout=30) as response:
        data = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    usage = json.loads(data[-2])
    assert usage["choices"] == [] and usage["object"] == "text_completion"
    answer = len(qwen_tokenizer.encode(" and so on, and so on.", add_special_tokens=False)) + 1
    prompts = len(qwen_tokenizer.encode("Once")) + len(qwen_tokenizer.encode("Twice"))
    assert usage["usage"] == {"prompt_tokens": prompts, "completion_tokens": 4 * answer, "total_tokens": prompts + 4 * answer}
    plain = httpx.post(f"{live.url}/v1/completions", json={**body, "stream_options": None}, timeout=30)
    assert '"usage"' not in plain.text


def test_a_huge_prompt_is_refused_by_its_length_before_tokenizing(make_chat_model: Any, serve: Any) -> None:
    chat_model = make_chat_model()
    chat_model.engine.max_context = 64
    bound = 64 * chat_model.longest_token_chars  # no tokenization of more characters can fit
    live = serve(chat_model)
    for route, body in (("chat/completions", {"messages": [{"role": "user", "content": "a" * (bound + 1)}]}),
                        ("completions", {"prompt": "a" * (bound + 1)})):
        reply = httpx.post(f"{live.url}/v1/{route}", json=body, timeout=30)
        # the character bound's message (the token count's says "tokens" and needs the text tokenized first)
        assert reply.status_code == 400 and f"{bound + 1} characters" in reply.json()["error"]["message"], route
    fits = httpx.post(f"{live.url}/v1/completions", json={"prompt": "a" * 40}, timeout=30)
    assert fits.status_code == 200
