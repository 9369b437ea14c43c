"""Console logging for the CLI: tunelab's own messages on stderr, one line each, prefixed."""

from __future__ import annotations

import logging
import sys


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (tests and notebooks swap it), not the one seen at setup."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value):  # noqa: D102
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Attach one stderr handler to the `tunelab` logger (idempotent: no duplicate lines)."""
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
