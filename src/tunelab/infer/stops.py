"""Stop sequences applied to streamed text, engine-independently.

A stop string can arrive split across several pieces ("Obs" + "ervation:"), so text that could be
the start of a stop string is held back until it either completes the stop (then it and everything
after it is dropped) or proves harmless (then it is released). No text past a stop ever reaches a
client, which is what OpenAI's `stop` promises.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed pieces in order; `feed` returns the text safe to emit and whether a stop was hit."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if not self.stops:
            return piece, False
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            self.stopped = True
            return text[:cut], True
        keep = self._longest_partial(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """The held-back text once the stream ended without completing a stop."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_partial(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
