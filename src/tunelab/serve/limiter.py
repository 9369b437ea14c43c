"""Admission control: at most `max_concurrent` generations run, at most `max_queue` wait, the rest
get 429 at once.

A model generates only so fast; letting every request in would make each one slower and memory
grow without bound. Queuing a bounded number keeps bursts smooth, and an immediate 429 with
Retry-After tells clients (the `openai` package retries 429 itself) to come back, instead of
timing out. Slots are released exactly once, however a request ends (done, error, disconnect).
"""

from __future__ import annotations

import asyncio

from tunelab.serve.errors import ApiError


class Slot:
    """A held generation slot; `release()` is idempotent."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter._release()


class Limiter:
    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.running = 0
        self.waiting = 0
        self._semaphore: asyncio.Semaphore | None = None
        self.rejected = 0

    async def acquire(self) -> Slot:
        if self._semaphore is None:  # created in the server's event loop
            self._semaphore = asyncio.Semaphore(self.max_concurrent)
        if self.running >= self.max_concurrent and self.waiting >= self.max_queue:
            self.rejected += 1
            raise ApiError(429, f"server busy: {self.running} requests running and {self.waiting} queued "
                           "(API_MAX_CONCURRENT / API_MAX_QUEUE); retry shortly.",
                           type_="rate_limit_error", code="server_busy")
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return Slot(self)

    def _release(self) -> None:
        self.running -= 1
        assert self._semaphore is not None
        self._semaphore.release()
