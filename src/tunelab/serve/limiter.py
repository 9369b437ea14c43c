"""Admission control: at most `max_concurrent` requests generate, at most `max_queue` wait, the rest
get 429 at once.

A model generates only so fast; letting every request in would make each one slower and memory
grow without bound. Queuing a bounded number keeps bursts smooth, and an immediate 429 with
Retry-After tells clients (the `openai` package retries 429 itself) to come back, instead of
timing out. Waiting requests get their slots in arrival order (asyncio's semaphore is FIFO); one
whose client leaves stops waiting. Slots are released exactly once, however a request ends (done,
error, disconnect). With the hf engine's batcher, the slots' default is the batch width
(API_MAX_BATCH): every request that holds a slot is decoded in the same forward passes.
"""

from __future__ import annotations

import asyncio
from collections import deque

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
    """Slots and their FIFO queue; used from the server's event loop only."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.running = 0
        self.rejected = 0
        self._free = max_concurrent
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def check(self) -> None:
        """A 429 now if a new request could neither run nor wait."""
        if self.running >= self.max_concurrent and self.waiting >= self.max_queue:
            self.rejected += 1
            raise ApiError(429, f"server busy: {self.running} requests running and {self.waiting} queued "
                           "(API_MAX_CONCURRENT / API_MAX_QUEUE); retry shortly.",
                           type_="rate_limit_error", code="server_busy")

    def try_acquire(self) -> Slot | None:
        """A slot if one is free and nobody is waiting for one (first come, first served), else None."""
        if self._free <= 0 or self._waiters:
            return None
        self._free -= 1
        self.running += 1
        return Slot(self)

    async def acquire(self) -> Slot:
        """A slot, waiting in line for it; 429 at once when the line is full. Cancelling the wait (the
        client left) takes the request out of the line."""
        slot = self.try_acquire()
        if slot is not None:
            return slot
        self.check()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._hand_over()  # the slot came just as the wait was cancelled: the next in line gets it
            elif turn in self._waiters:
                self._waiters.remove(turn)
            raise
        self.running += 1
        return Slot(self)

    def _release(self) -> None:
        self.running -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
