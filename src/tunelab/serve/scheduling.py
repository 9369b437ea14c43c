"""Running a job for one HTTP request: its caps, its slot, and its cancellation when the client leaves.

A model's time is the one shared resource of the server, so work nobody waits for any more is stopped:
a client that disconnects, streaming or not, queued or running, has its job cancelled at once
(`Job.cancel()`: its streams stop within one decoding step, later choices never start) and its slot
freed as soon as the worker thread returns. Starlette does not cancel a handler whose client left, so
whole answers watch the connection themselves; streams hear it from sse-starlette.

A stream that has to wait for a slot gets its 200 headers and an SSE comment at once, then keep-alive
comments every `SSE_PING_SECONDS`, so clients and proxies see a live connection instead of silence
(their read timeouts would fire while the request is still queued). Its prompt is then checked when
its turn comes: a problem found there arrives as an OpenAI error event (`data: {"error": ...}`, which
the `openai` client raises as an `APIError`) instead of a 400, because the status is already sent.

One request may not ask for more than `API_MAX_CHOICES` generations (prompts x n) or
`API_MAX_REQUEST_TOKENS` new tokens in all: a single huge request would hold the model for minutes
(40 prompts x n=16 ran 640 generations, 92 s, while every other client waited).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from tunelab.errors import UserError
from tunelab.serve.errors import ApiError, RequestCancelled
from tunelab.serve.limiter import Limiter, Slot
from tunelab.serve.settings import ServerSettings

logger = logging.getLogger("tunelab.serve")

SSE_PING_SECONDS = 15  # keeps proxies from closing a stream while it is queued or a long prompt is processed
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never read by anyone


def refuse_over_caps(job: Any, settings: ServerSettings) -> None:
    """A 400 naming the field and the setting when one request asks for more than the server allows."""
    request = job.request
    if job.count > settings.max_choices:
        prompts = job.count // max(1, request.n)
        what = f"{prompts} prompts x n={request.n}" if prompts > 1 else f"n={request.n}"
        raise ApiError(400, f"n: this request asks for {job.count} generations ({what}); this server allows at most "
                       f"{settings.max_choices} per request (API_MAX_CHOICES). Send fewer prompts or a smaller n.",
                       param="n", code="too_many_choices")
    total = job.max_new_tokens_total
    if total is not None and total > settings.max_request_tokens:
        field = "max_completion_tokens" if getattr(request, "max_completion_tokens", None) else "max_tokens"
        raise ApiError(400, f"{field}: this request may generate {total} tokens in all ({job.count} generations x "
                       f"{total // max(1, job.count)}); this server allows at most {settings.max_request_tokens} per "
                       "request (API_MAX_REQUEST_TOKENS). Lower max_tokens or n.", param=field, code="too_many_tokens")


async def _until_disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body was read already: only that can come)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def whole_answer(job: Any, limiter: Limiter, request: Request, respond: Any) -> Response:
    """Queue, run `job.run_all` in a worker thread and answer with `respond(result)`, unless the client
    leaves first: then the job is cancelled and the slot freed when its thread returns."""

    async def work() -> Any:
        slot = await limiter.acquire()
        try:
            return await run_in_threadpool(job.run_all)
        finally:
            slot.release()

    task = asyncio.ensure_future(work())
    watch = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        job.cancel()
        task.cancel()  # a queued request stops waiting; a running one ends when its thread returns (shielded)
        with contextlib.suppress(asyncio.CancelledError, RequestCancelled):
            await task
        logger.info("client left: %s cancelled", getattr(job, "id", "request"))
        return Response(status_code=CLIENT_CLOSED)
    return JSONResponse(respond(task.result()))


def _error_event(error: BaseException) -> str:
    if isinstance(error, ApiError):
        return json.dumps(error.body())
    if isinstance(error, UserError):
        return json.dumps(ApiError(400, error.message).body())
    logger.error("stream failed after its headers were sent", exc_info=error)
    return json.dumps(ApiError(500, "internal server error; see the server log", type_="server_error").body())


async def _queued_events(job: Any, limiter: Limiter) -> AsyncIterator[Any]:
    """A stream that waits for its slot: a comment at once, the wait (pinged), then the job's events."""
    yield ServerSentEvent(comment="queued")
    slot: Slot | None = None
    try:
        slot = await limiter.acquire()
        first = await run_in_threadpool(job.start, 0)
    except RequestCancelled:
        return
    except Exception as error:  # noqa: BLE001 (the status is sent: the error goes in the stream)
        if slot is not None:
            slot.release()
        yield _error_event(error)
        return
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    async for event in job.events(first, slot):
        yield event


async def stream_answer(job: Any, limiter: Limiter) -> EventSourceResponse:
    """Server-sent events for a streaming request. With a slot free now, the first stream starts before
    the 200 (a bad prompt is still a 400); otherwise the headers go out at once and the request waits."""
    limiter.check()
    slot = limiter.try_acquire()
    background = None
    if slot is not None:
        try:
            first = await run_in_threadpool(job.start, 0)
        except BaseException:
            slot.release()
            raise
        body: AsyncIterator[Any] = job.events(first, slot)
        background = BackgroundTask(slot.release)  # also when the body never ran (the client left at once)
    else:
        body = _queued_events(job, limiter)

    async def on_disconnect(message: Any) -> None:
        job.cancel()  # before sse-starlette cancels the body: a worker thread inside next() or text() returns now

    return EventSourceResponse(body, ping=SSE_PING_SECONDS, background=background,
                               client_close_handler_callable=on_disconnect)
