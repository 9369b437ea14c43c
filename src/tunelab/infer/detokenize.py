"""Incremental detokenization: token ids in, text deltas out, in O(1) decodes per token.

Decoding one token at a time is wrong for byte-level BPE (a CJK character or an emoji spans several
tokens) and decoding the whole output each step is quadratic. This keeps a short window, the
method vLLM uses: re-decode from a few tokens back and emit only what is new and complete.
"""

from __future__ import annotations

from typing import Any


class IncrementalDecoder:
    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens))

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (may be "" while a character is partial)."""
        self.ids.append(int(token_id))
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is still pending at the end (a dangling partial character is emitted as decoded)."""
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return after[len(before) :] if len(after) > len(before) else ""
