"""SIGINT / SIGTERM anywhere in a run end it cleanly: a message saying what is on disk, exit 128 + signal.

What a signal does depends on the phase the recipe is in (`InterruptCallback.phase`):
- training: finish the current step, save a checkpoint and stop (a second signal stops at once);
  when that step was the last one, the final model is still saved;
- saving the final model: the save completes first (a half-written final model helps nobody), then
  the run stops;
- anything else (data preparation, model load, evaluation, prediction): stop at once with
  `Interrupted`, which the recipe turns into one message naming what can be resumed.

Signal handlers are process-wide, so they are installed only for the duration of the run and the
previous handlers are restored afterwards; outside the main thread (a web UI worker) they are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")

TRAINING = "training"
SAVING = "saving the final model"


class Interrupted(BaseException):
    """A signal outside the training loop (a BaseException, like KeyboardInterrupt: `except Exception` lets it by)."""

    def __init__(self, signum: int, phase: str) -> None:
        super().__init__(signum, phase)
        self.signum = signum
        self.phase = phase


class InterruptCallback(TrainerCallback):
    """Turns a received signal into the phase's clean stop (see the module docstring)."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self.phase = "preparing the run"
        self.final_saved = False  # set by the recipe once the final model is published

    def request_stop(self, signum: int, frame: Any = None) -> None:
        name = signal.Signals(signum).name
        if self.phase == SAVING:
            self.signal_number = signum
            logger.warning("received %s: finishing the final save, then stopping", name)
            return
        if self.phase != TRAINING:
            raise Interrupted(signum, self.phase)
        if self.signal_number is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal_number = signum
        logger.warning("received %s: saving a checkpoint after this step, then stopping (send it again to stop now)",
                       name)

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


def stopped(signum: int, message: str) -> UserError:
    """The run's end after a signal: one message, exit code 128 + the signal number (143 for SIGTERM)."""
    error = UserError(f"stopped by {signal.Signals(signum).name} {message}")
    error.exit_code = 128 + signum
    return error


def interrupted_outside_training(interrupted: Interrupted, output_dir: str, final_saved: bool) -> UserError:
    """The message for a signal during data preparation, model load, evaluation or prediction."""
    from tunelab.train.run.resume import list_checkpoints

    if final_saved:
        return stopped(interrupted.signum, f"while {interrupted.phase}; training had finished and the final model is "
                                           f"saved in {output_dir}.")
    found = list_checkpoints(Path(output_dir))
    after = (f"its latest checkpoint is {found[-1]}: continue with resume_from_checkpoint: true" if found
             else "nothing was trained yet: run the same command again")
    return stopped(interrupted.signum, f"while {interrupted.phase}, before training ended; {after}.")
