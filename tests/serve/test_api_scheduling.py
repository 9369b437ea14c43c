"""Scheduling of `tunelab api` on a live uvicorn server with the real hf engine (a tiny Qwen2): clients
that give up free their work within a second, streams that must wait get their headers at once,
per-request caps are 400s naming the setting, and concurrent answers equal the answers alone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tunelab.infer.chat_model import ChatModel

HELLO = [{"role": "user", "content": "Tell me everything about the sea."}]
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
LONG = 1500  # tokens: several seconds on the tiny model, far longer than any client here waits


@pytest.fixture(scope="module")
def hf_chat_model(tmp_path_factory: pytest.TempPathFactory) -> ChatModel:
    from tunelab.config.parser import parse_config
    from tunelab.infer.loader import load_chat_model
    from tunelab.testing import TinyModelSpec, build_tiny_model

    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=False)
    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny-sched"), family="qwen2", spec=spec, seed=3)
    return load_chat_model(parse_config([f"model_name_or_path={model_dir}", "template=qwen", "do_sample=false"]))


def idle_within(url: str, engine: Any, seconds: float) -> bool:
    """Whether /health shows no request running or queued, and the engine nothing decoding or waiting."""
    deadline = time.monotonic() + seconds
    while True:
        health = httpx.get(f"{url}/health").json()
        if (health["running"], health["queued"]) == (0, 0) and engine.scheduler_state() == {"decoding": 0, "waiting": 0}:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def busy_within(url: str, seconds: float, *, running: int, queued: int = 0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health").json()
        if health["running"] >= running and health["queued"] >= queued:
            return True
        time.sleep(0.02)
    return False


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": HELLO, "temperature": 0, "max_tokens": LONG, **extra}


def test_a_non_streaming_client_that_times_out_frees_its_slot(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    live = serve(hf_chat_model)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live.url}/v1/chat/completions", json=chat_body(), timeout=0.5)
    assert idle_within(live.url, hf_chat_model.engine, 1.0)


def test_a_streaming_client_that_leaves_frees_its_slot(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    import openai

    live = serve(hf_chat_model)
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(**chat_body(), stream=True)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    assert idle_within(live.url, hf_chat_model.engine, 1.0)


def test_a_tools_stream_whose_client_leaves_frees_its_slot(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    """With tools the whole answer is generated before anything is sent: the client leaving during that must stop it."""
    live = serve(hf_chat_model)
    with pytest.raises(httpx.ReadTimeout), httpx.stream("POST", f"{live.url}/v1/chat/completions", timeout=0.5,
                                                        json=chat_body(stream=True, tools=[WEATHER_TOOL])) as reply:
        for _ in reply.iter_lines():
            pass
    assert idle_within(live.url, hf_chat_model.engine, 1.0)


def test_queued_clients_that_give_up_are_never_generated(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    engine: Any = hf_chat_model.engine
    started: list[int] = []
    original = engine.stream

    def counting(*args: Any, **kwargs: Any) -> Any:
        started.append(1)
        return original(*args, **kwargs)

    engine.stream = counting
    try:
        live = serve(hf_chat_model, max_concurrent=1)
        holder = httpx.Client(timeout=30)
        with holder.stream("POST", f"{live.url}/v1/chat/completions", json=chat_body(stream=True)):
            assert busy_within(live.url, 2.0, running=1)

            def give_up() -> None:
                with pytest.raises(httpx.ReadTimeout):
                    httpx.post(f"{live.url}/v1/chat/completions", json=chat_body(max_tokens=4), timeout=0.6)

            quitters = [threading.Thread(target=give_up) for _ in range(5)]
            for thread in quitters:
                thread.start()
            assert busy_within(live.url, 2.0, running=1, queued=5)
            for thread in quitters:
                thread.join()
            deadline = time.monotonic() + 1
            while httpx.get(f"{live.url}/health").json()["queued"] and time.monotonic() < deadline:
                time.sleep(0.02)
            health = httpx.get(f"{live.url}/health").json()
            assert (health["running"], health["queued"]) == (1, 0)  # they left the line; the stream still runs
        assert idle_within(live.url, engine, 1.0)
        assert len(started) == 1  # only the stream that held the slot ever reached the engine
    finally:
        del engine.stream


def test_a_queued_stream_gets_headers_and_a_comment_at_once(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    live = serve(hf_chat_model, max_concurrent=1)
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{live.url}/v1/chat/completions", json=chat_body(stream=True)) as first:
            assert busy_within(live.url, 2.0, running=1)
            waiting = client.stream("POST", f"{live.url}/v1/chat/completions",
                                    json=chat_body(stream=True, max_tokens=5), timeout=1.0)
            reply = waiting.__enter__()
            try:
                assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
                lines = reply.iter_lines()
                assert next(lines) == ": queued"  # sent while the first stream still holds the only slot
                assert httpx.get(f"{live.url}/health").json()["queued"] == 1
                first.close()  # the first client leaves: the queued stream gets the slot and runs to the end
                data = [line[len("data: "):] for line in lines if line.startswith("data: ")]
            finally:
                waiting.__exit__(None, None, None)
    assert data[-1] == "[DONE]"
    finish = [c["choices"][0]["finish_reason"] for c in map(json.loads, data[:-1]) if c["choices"]]
    assert finish[-1] == "length"
    assert idle_within(live.url, hf_chat_model.engine, 1.0)


def test_a_queued_stream_whose_client_leaves_leaves_the_line(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    live = serve(hf_chat_model, max_concurrent=1)
    with httpx.Client(timeout=30) as client, \
            client.stream("POST", f"{live.url}/v1/chat/completions", json=chat_body(stream=True)):
        assert busy_within(live.url, 2.0, running=1)
        with client.stream("POST", f"{live.url}/v1/chat/completions", json=chat_body(stream=True)) as queued:
            assert next(queued.iter_lines()) == ": queued"
        deadline = time.monotonic() + 1
        while httpx.get(f"{live.url}/health").json()["queued"] and time.monotonic() < deadline:
            time.sleep(0.02)
        health = httpx.get(f"{live.url}/health").json()
        assert (health["running"], health["queued"]) == (1, 0)
    assert idle_within(live.url, hf_chat_model.engine, 1.0)


def test_concurrent_answers_equal_each_answer_alone(hf_chat_model: ChatModel, serve: Callable[..., Any]) -> None:
    live = serve(hf_chat_model, max_concurrent=8)
    questions = [f"Question {i}: " + "why is the sea salty? " * i for i in range(6)]

    def ask(question: str) -> str:
        body = {"model": "tiny", "messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 8}
        return httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]["content"]

    alone = [ask(q) for q in questions]
    together: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i, q=q: together.__setitem__(i, ask(q))) for i, q in enumerate(questions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[i] for i in range(len(questions))] == alone


@pytest.mark.parametrize(("route", "body", "setting", "param"), [
    ("/v1/chat/completions", {"messages": HELLO, "n": 5, "max_tokens": 4}, "API_MAX_CHOICES", "n"),
    ("/v1/completions", {"prompt": ["a", "b", "c"], "n": 2, "max_tokens": 4}, "API_MAX_CHOICES", "n"),
    ("/v1/chat/completions", {"messages": HELLO, "n": 2, "max_tokens": 60}, "API_MAX_REQUEST_TOKENS", "max_tokens"),
    ("/v1/completions", {"prompt": "a", "n": 4, "max_tokens": 40}, "API_MAX_REQUEST_TOKENS", "max_tokens"),
])
def test_requests_over_the_caps_are_refused_naming_the_setting(
    make_chat_model: Callable[..., ChatModel], serve: Callable[..., Any], route: str, body: dict[str, Any],
    setting: str, param: str,
) -> None:
    chat_model = make_chat_model()
    live = serve(chat_model, max_choices=4, max_request_tokens=100)
    reply = httpx.post(f"{live.url}{route}", json={"model": "m", **body}, timeout=10)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert setting in error["message"] and error["param"] == param
    assert chat_model.engine.started == 0  # refused before any work  # type: ignore[attr-defined]
    within = {**body, "n": 1}
    if route == "/v1/completions":
        within["prompt"] = "a"
    assert httpx.post(f"{live.url}{route}", json={"model": "m", **within}, timeout=10).status_code == 200
