"""Console logging for the CLI: tunelab's own messages on stderr, one line each, prefixed, each once;
and the one place where third-party lines that tell a tunelab user nothing are filtered out."""

from __future__ import annotations

import logging
import re
import sys
import warnings
from typing import Any

#: logger name -> messages of that library that say nothing to a tunelab user (matched with re.search)
NOISY_LOG_LINES: dict[str, tuple[str, ...]] = {
    # a config read through AutoConfig for a model with its own code: the "expected" type is the empty base type
    "transformers.configuration_utils": (r"to instantiate a model of type ``",),
}
#: Python warnings of libraries that tunelab already handles (message regex, category)
NOISY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r".*'pin_memory' argument is set as true but no accelerator is found", UserWarning),  # CPU runs
    (r".*`is_gradient_checkpointing` is deprecated", FutureWarning),  # asked by peft / Trainer, not by the user
)

_logged_once: set[tuple[str, str]] = set()


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (tests and notebooks swap it), not the one seen at setup."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value):  # noqa: D102
        pass


class _DropLines(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in self.patterns)


def quiet_third_party() -> None:
    """Drop the lines of NOISY_LOG_LINES / NOISY_WARNINGS (idempotent; needs no third-party import)."""
    for name, patterns in NOISY_LOG_LINES.items():
        target = logging.getLogger(name)  # the same object the library gets later with getLogger(__name__)
        if not any(isinstance(f, _DropLines) for f in target.filters):
            target.addFilter(_DropLines(patterns))
    for message, category in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def log_once(logger: logging.Logger, message: str, *args: Any, level: int = logging.INFO) -> None:
    """Log a message the first time only: a fact found by several steps of one run is said once."""
    key = (logger.name, message % args if args else message)
    if key in _logged_once:
        return
    _logged_once.add(key)
    logger.log(level, message, *args)


def setup_logging(level: int = logging.INFO) -> None:
    """Attach one stderr handler to the `tunelab` logger (idempotent: no duplicate lines)."""
    quiet_third_party()
    root = logging.getLogger("tunelab")
    if any(getattr(h, "_tunelab", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("[tunelab] %(message)s"))
    handler._tunelab = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def reset_log_once() -> None:
    """Forget what was logged once: a new run (a new config) says its facts again."""
    _logged_once.clear()
