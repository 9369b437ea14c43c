"""Token log-probabilities as OpenAI reports them: chat's `logprobs.content`, completions' legacy `logprobs`.

The engine gives one `TokenLogprob` per generated token (`TextStream.token_logprobs`), the end-of-turn
token included. That token is not part of the text, so it is not reported: the reported tokens, joined,
are the answer. A token's text is its own decoding; `bytes` are that text's UTF-8 bytes (a token holding
half of a character decodes to U+FFFD, as OpenAI's `token` would show it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunelab.infer.engine import TokenLogprob


class LogprobFormatter:
    """Turns TokenLogprobs into OpenAI's entries for one model's tokenizer."""

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(stop_ids)

    def text_tokens(self, entries: Sequence[TokenLogprob]) -> list[TokenLogprob]:
        """The entries of tokens that are part of the text (not the end-of-turn token)."""
        return [entry for entry in entries if entry.token_id not in self.stop_ids]

    def token(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def _item(self, token_id: int, logprob: float) -> dict[str, Any]:
        text = self.token(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def chat(self, entries: Sequence[TokenLogprob]) -> dict[str, Any]:
        """`choices[i].logprobs` of a chat answer (or of one streamed chunk)."""
        content = []
        for entry in self.text_tokens(entries):
            item = self._item(entry.token_id, entry.logprob)
            item["top_logprobs"] = [self._item(token, logprob) for token, logprob in entry.top]
            content.append(item)
        return {"content": content, "refusal": None}

    def completion(self, entries: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
        """`choices[i].logprobs` of a completion: tokens, their logprobs, the top alternatives and where each
        token starts in the choice's text (`offset`: characters already before it, e.g. an echoed prompt)."""
        tokens, logprobs, tops, offsets = [], [], [], []
        for entry in self.text_tokens(entries):
            text = self.token(entry.token_id)
            tokens.append(text)
            logprobs.append(entry.logprob)
            tops.append({self.token(token): logprob for token, logprob in entry.top})
            offsets.append(offset)
            offset += len(text)
        return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}
