"""OpenAI-style error bodies, so clients (the `openai` package raises typed exceptions from them)
see `{"error": {"message", "type", "param", "code"}}` for every failure, never a bare 500 page."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("tunelab.serve")


class ApiError(Exception):
    """An error with its HTTP status and OpenAI error type."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class RequestCancelled(Exception):
    """The request's job was cancelled (its client went away): nothing more is started for it."""


#: loc entries pydantic adds for the member of a union it tried (`prompt.constrained-str`): not field names
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _param(loc: Any) -> str | None:
    parts = [str(p) for p in loc if p != "body"
             and not (isinstance(p, str) and (p in _UNION_TAGS or any(c in p for c in "[]-")))]
    return ".".join(parts) or None


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """pydantic's errors as one readable 400 message naming the first bad field (text that is not valid
    Unicode first: of a union's failed members, that is the one that says what is wrong)."""
    unicode = [e for e in errors if e.get("type") == "string_unicode"]
    if unicode:
        param = _param(unicode[0].get("loc", ()))
        return ApiError(400, f"{param}: invalid text (a lone UTF-16 surrogate such as \\ud83d); send valid UTF-8.",
                        param=param, code="invalid_text")
    first = errors[0] if errors else {}
    param = _param(first.get("loc", ()))
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg", "invalid request body"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return ApiError(400, message, param=param, code="invalid_value")


def install_handlers(app: Any) -> None:
    """Map every exception to an OpenAI error body: ApiError as is, validation → 400,
    UserError → 400, HTTP errors keep their status, anything else → 500 with a generic message."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from tunelab.errors import UserError

    def respond(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        if error.status == 429:
            headers = {"Retry-After": "1"}
        return respond(error, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        return respond(validation_error(list(error.errors())))

    @app.exception_handler(UserError)
    async def _user(request: Request, error: UserError) -> JSONResponse:
        return respond(ApiError(400, error.message))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return respond(ApiError(error.status_code, str(error.detail), type_=kind))

    @app.exception_handler(Exception)
    async def _internal(request: Request, error: Exception) -> JSONResponse:
        logger.exception("internal error on %s", request.url.path)
        return respond(ApiError(500, "internal server error; see the server log", type_="server_error"))
