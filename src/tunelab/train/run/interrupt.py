"""SIGINT / SIGTERM during training: finish the current step, save a checkpoint, exit cleanly.

Signal handlers are process-wide, so they are installed only for the duration of `trainer.train()`
and the previous handlers are restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger("tunelab.train")


class InterruptCallback(TrainerCallback):
    """Turns a received signal into "save a checkpoint and stop" at the end of the current step."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def request_stop(self, signum: int, frame: Any = None) -> None:
        if self.signal_number is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal_number = signum
        logger.warning("received %s: saving a checkpoint after this step, then stopping (send it again to stop now)",
                       signal.Signals(signum).name)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.signal_number is not None:
            control.should_save = True
            control.should_training_stop = True


@contextlib.contextmanager
def stop_on_signals(callback: InterruptCallback) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig in previous:
            signal.signal(sig, callback.request_stop)
    except ValueError:  # not the main thread (e.g. inside a web UI worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
