"""HTTP-level behaviour the openai client hides: raw error bodies, health, auth header forms,
admission control (queue then 429), reward scoring, and slot release when a client leaves."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from _serve_fakes import API_KEY, FakeScorer

from tunelab.serve.auth import check_api_key
from tunelab.serve.errors import ApiError

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def test_health_needs_no_key_and_routes_need_one(make_chat_model: Any, serve: Any) -> None:
    live = serve(make_chat_model(), api_key=API_KEY)
    health = httpx.get(f"{live.url}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["model"] == "fake-model"
    missing = httpx.get(f"{live.url}/v1/models")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{live.url}/v1/models", headers={"Authorization": API_KEY}).status_code == 401  # no scheme
    assert httpx.get(f"{live.url}/v1/models", headers=AUTH).status_code == 200


def test_check_api_key_unit() -> None:
    check_api_key(None, None)  # no key configured: open
    check_api_key("Bearer k1", "k1")
    check_api_key("bearer k1", "k1")
    for header in (None, "", "Bearer", "Bearer k2", "Basic k1", "Bearer k1x"):
        with pytest.raises(ApiError) as info:
            check_api_key(header, "k1")
        assert info.value.status == 401


def test_malformed_body_and_unknown_route(make_chat_model: Any, serve: Any) -> None:
    live = serve(make_chat_model(), model_name="served-name")
    raw = httpx.post(f"{live.url}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"
    wrong_type = httpx.post(f"{live.url}/v1/chat/completions", json={"messages": "hello"})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["param"] == "messages"
    missing = httpx.post(f"{live.url}/v1/completions", json={"model": "m"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "prompt"
    nowhere = httpx.get(f"{live.url}/v2/nothing")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["type"] == "not_found_error"
    ok = httpx.post(f"{live.url}/v1/chat/completions", json=HELLO)
    assert ok.json()["model"] == "served-name"


def test_engine_failure_is_500_with_error_body(make_chat_model: Any, serve: Any) -> None:
    chat_model = make_chat_model()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    chat_model.engine.stream = broken
    live = serve(chat_model)
    reply = httpx.post(f"{live.url}/v1/chat/completions", json=HELLO)
    assert reply.status_code == 500
    assert reply.json()["error"] == {"message": "internal server error; see the server log", "type": "server_error",
                                     "param": None, "code": None}
    assert httpx.get(f"{live.url}/health").json()["running"] == 0  # the slot was given back


def test_requests_queue_then_429(make_chat_model: Any, serve: Any) -> None:
    live = serve(make_chat_model(delay=0.05), max_concurrent=1, max_queue=1)
    results: list[int] = []

    def call() -> None:
        results.append(httpx.post(f"{live.url}/v1/chat/completions", json=HELLO, timeout=30).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while httpx.get(f"{live.url}/health").json()["queued"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    busy = httpx.post(f"{live.url}/v1/chat/completions", json=HELLO)
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "rate_limit_error"
    for thread in threads:
        thread.join()
    assert results == [200, 200]  # the queued one was answered, not dropped


def test_client_leaving_a_stream_frees_the_slot(make_chat_model: Any, serve: Any) -> None:
    chat_model = make_chat_model(delay=0.05)
    live = serve(chat_model, max_concurrent=1, max_queue=0)
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json={**HELLO, "stream": True}) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    deadline = time.monotonic() + 5
    while httpx.get(f"{live.url}/health").json()["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert httpx.get(f"{live.url}/health").json()["running"] == 0
    assert httpx.post(f"{live.url}/v1/chat/completions", json=HELLO, timeout=30).status_code == 200


def test_sse_wire_format_ends_with_done(make_chat_model: Any, serve: Any) -> None:
    live = serve(make_chat_model())
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json={**HELLO, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert '"object": "chat.completion.chunk"' in data[0]


def test_reward_scoring(make_chat_model: Any, serve: Any) -> None:
    live = serve(make_chat_model(scorer=FakeScorer()))
    reply = httpx.post(f"{live.url}/v1/score/evaluation", json={"model": "m", "messages": ["ab", "abcd"]})
    assert reply.status_code == 200
    assert reply.json()["object"] == "score.evaluation" and reply.json()["scores"] == [2.0, 4.0]
    plain = serve(make_chat_model())
    refused = httpx.post(f"{plain.url}/v1/score/evaluation", json={"messages": ["x"]})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_a_reward_model"
    assert httpx.post(f"{live.url}/v1/score/evaluation", json={"messages": []}).status_code == 400


def test_context_overflow_is_400(make_chat_model: Any, serve: Any) -> None:
    chat_model = make_chat_model()
    chat_model.engine.max_context = 20
    live = serve(chat_model)
    reply = httpx.post(f"{live.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "word " * 50}]})
    assert reply.status_code == 400
    assert "holds at most 20" in reply.json()["error"]["message"]
