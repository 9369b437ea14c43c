"""serve/security.py in front of the real app: the Host check (DNS rebinding), CORS, the API key before the
body is read (and over /openapi.json), and the body-size cap, each answered with an OpenAI error body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _serve_fakes import API_KEY

HELLO = {"messages": [{"role": "user", "content": "hello"}]}
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def secured(make_chat_model: Any, serve: Any) -> Any:
    """A live server with these settings (create_app installs serve/security.py)."""
    return lambda **settings: serve(make_chat_model(), **settings)


def test_host_header_must_be_an_allowed_name(secured: Any) -> None:
    live = secured()
    ok = httpx.post(f"{live.url}/v1/chat/completions", json=HELLO, timeout=30)
    assert ok.status_code == 200
    rebound = httpx.post(f"{live.url}/v1/chat/completions", json=HELLO, headers={"Host": "evil.example:8000"}, timeout=30)
    assert rebound.status_code == 400
    assert rebound.json()["error"]["param"] == "Host" and "API_ALLOWED_HOSTS" in rebound.json()["error"]["message"]
    assert httpx.get(f"{live.url}/health", headers={"Host": "localhost:1234"}).status_code == 200
    listed = secured(allowed_hosts=("*.example.com",))
    assert httpx.get(f"{listed.url}/health", headers={"Host": "api.example.com"}).status_code == 200
    assert httpx.get(f"{listed.url}/health", headers={"Host": "example.org"}).status_code == 400


def test_cors_is_off_by_default_and_names_its_setting(secured: Any) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    closed = secured(api_key=API_KEY)
    refused = httpx.options(f"{closed.url}/v1/chat/completions", headers=preflight)
    assert refused.status_code == 403 and "API_CORS_ORIGINS" in refused.json()["error"]["message"]
    opened = secured(api_key=API_KEY, cors_origins=("https://app.example",))
    allowed = httpx.options(f"{opened.url}/v1/chat/completions", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    reply = httpx.post(f"{opened.url}/v1/chat/completions", json=HELLO,
                       headers={**AUTH, "Origin": "https://app.example"}, timeout=30)
    assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(f"{opened.url}/v1/chat/completions", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_the_key_is_checked_before_the_body_and_guards_the_schema(secured: Any) -> None:
    live = secured(api_key=API_KEY)
    garbage = httpx.post(f"{live.url}/v1/chat/completions", content=b"{not json", timeout=30,
                         headers={"Content-Type": "application/json"})
    assert garbage.status_code == 401 and garbage.headers["www-authenticate"] == "Bearer"  # not 400: never parsed
    assert httpx.get(f"{live.url}/openapi.json").status_code == 401
    assert httpx.get(f"{live.url}/openapi.json", headers=AUTH).status_code == 200
    assert httpx.get(f"{live.url}/health").status_code == 200
    assert httpx.post(f"{live.url}/v1/chat/completions", json=HELLO, headers=AUTH, timeout=30).status_code == 200
    # the body the check read is handed on whole, and a stream still hears its client (disconnects pass through)
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json={**HELLO, "stream": True}, headers=AUTH,
                      timeout=30) as response:
        data = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200 and data[-1] == "data: [DONE]"


def test_bodies_over_the_cap_are_413_before_parsing(secured: Any) -> None:
    live = secured(max_body_bytes=2048)
    big = {"messages": [{"role": "user", "content": "x" * 4000}]}
    declared = httpx.post(f"{live.url}/v1/chat/completions", json=big, timeout=30)
    assert declared.status_code == 413 and "API_MAX_BODY_BYTES" in declared.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts what arrives
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 400
        yield b'"}]}'

    chunked = httpx.post(f"{live.url}/v1/chat/completions", content=chunks(), timeout=30,
                         headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    small = httpx.post(f"{live.url}/v1/chat/completions", content=iter([b'{"messages": [{"role": "user", ',
                                                                         b'"content": "hi"}]}']),
                       headers={"Content-Type": "application/json"}, timeout=30)
    assert small.status_code == 200 and small.json()["choices"][0]["message"]["content"] == "You said: hi. The end."
