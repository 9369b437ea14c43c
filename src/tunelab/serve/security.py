"""What every request passes before the API reads it: the Host check, CORS, the API key, the body-size cap.

These run as pure ASGI middleware, ahead of FastAPI, so that a request without the key, from a rebound DNS
name, or with a body past `API_MAX_BODY_BYTES` is answered before its body is read or parsed (a 10 MB body
from anyone who can reach the port would otherwise be parsed first). The order, outermost first:

1. **Host** (`API_ALLOWED_HOSTS`, default the loopback names when the server binds loopback): a browser page
   on evil.example whose name was rebound to 127.0.0.1 sends `Host: evil.example`, and is refused (400).
2. **CORS** (`API_CORS_ORIGINS`, default none): starlette's CORSMiddleware answers preflights for the listed
   origins; without any, a preflight gets a 403 that names the setting, instead of a bare 405.
3. **API key** (`API_KEY`): every path but `/health`, `/openapi.json` and `/docs` included, needs
   `Authorization: Bearer <key>`, checked in constant time (serve/auth.py).
4. **Body size**: a Content-Length past the cap is a 413 at once; a chunked body is read up to the cap, then
   handed on whole (later `receive()` calls, e.g. the disconnect a streaming response listens for, pass through).

Errors are OpenAI error bodies, like every other error of the API. The Host check is written here rather
than taken from starlette's TrustedHostMiddleware only because that one answers in plain text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

from tunelab.serve.auth import check_api_key
from tunelab.serve.errors import ApiError
from tunelab.serve.settings import ServerSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})  # load balancers probe these without a key


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _host_name(host: str) -> str:
    """The name of a Host header, without its port (`[::1]:8000` -> `[::1]`, `localhost:8000` -> `localhost`)."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header names an allowed host: "*" allows any, "*.example.com" its subdomains."""
    if "*" in allowed:
        return True
    if not host:
        return False
    name = _host_name(host.strip().lower())
    return any(name == pattern.lower() or (pattern.startswith("*.") and name.endswith(pattern[1:].lower()))
               for pattern in allowed)


async def _refuse(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    await JSONResponse(error.body(), status_code=error.status, headers=headers)(scope, receive, send)


class HostCheck:
    """Refuses requests whose Host header is not an allowed name (DNS rebinding)."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = _header(scope, b"host")
            if not host_allowed(host, self.allowed):
                return await _refuse(ApiError(400, f"Host {host!r} is not served here; allowed: "
                                              f"{', '.join(self.allowed)}. Set API_ALLOWED_HOSTS to add a name.",
                                              param="Host", code="host_not_allowed"), scope, receive, send)
        await self.app(scope, receive, send)


class KeyAndBodyCheck:
    """The API key before the body is read, then the body-size cap; preflights without CORS get a 403."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            self._check_headers(scope)
            receive = await self._bounded_body(scope, receive)
        except ApiError as error:
            return await _refuse(error, scope, receive, send)
        await self.app(scope, receive, send)

    def _check_headers(self, scope: Scope) -> None:
        preflight = scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None
        if preflight and not self.settings.cors_origins:
            raise ApiError(403, f"cross-origin requests from {_header(scope, b'origin')!r} are not allowed: set "
                           "API_CORS_ORIGINS to the origins that may call this server (docs/inference.md).",
                           param="Origin", code="cors_not_allowed")
        if scope["path"] not in OPEN_PATHS:
            check_api_key(_header(scope, b"authorization"), self.settings.api_key)

    async def _bounded_body(self, scope: Scope, receive: Receive) -> Receive:
        cap = self.settings.max_body_bytes
        too_big = ApiError(413, f"the request body is larger than {cap} bytes (API_MAX_BODY_BYTES).",
                           type_="invalid_request_error", code="request_too_large")
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise too_big
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return _replay([message], receive)
            size += len(message.get("body", b""))
            if size > cap:
                raise too_big
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out `messages` first, then the connection's own (disconnects keep arriving)."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def install_security(app: Any, settings: ServerSettings) -> None:
    """Put the checks in front of `app` (before it serves), outermost first: Host, CORS, key and body.
    A second call does nothing, so the checks never run twice."""
    if getattr(app.state, "security", None) is not None:
        return
    app.state.security = settings
    app.add_middleware(KeyAndBodyCheck, settings=settings)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)
