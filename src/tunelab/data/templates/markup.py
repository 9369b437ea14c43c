"""The pieces rendering produces and templates are written with: placeholders, special tokens, segments.

Kept apart from `base.py` (the `Template` record) so that `render.py`, which turns a template into
segments, and `base.py`, whose `Template.render` calls it, import these from below instead of from
each other.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTENT = "{{content}}"
BOS = "{{bos_token}}"
EOS = "{{eos_token}}"


@dataclass(frozen=True)
class SpecialTokens:
    """The tokenizer's own bos/eos strings, substituted into `{{bos_token}}` / `{{eos_token}}`."""

    bos: str = ""
    eos: str = ""

    @classmethod
    def from_tokenizer(cls, tokenizer: object) -> SpecialTokens:
        bos = getattr(tokenizer, "bos_token", None) or ""
        eos = getattr(tokenizer, "eos_token", None) or ""
        return cls(bos=str(bos), eos=str(eos))

    def fill(self, text: str) -> str:
        return text.replace(BOS, self.bos).replace(EOS, self.eos)


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text and what it is.

    `turn` numbers the assistant turns from 0; prompt text before assistant turn i and that
    turn's response both carry `turn=i` (text after the last response carries one more).
    `response`: part of an assistant turn (trainable). `content`: comes from the data rather
    than from the template's markup (truncation may cut content, never markup).
    `trainable`: False for response text that must stay context (e.g. a think block written while
    `enable_thinking` is off, or a reasoning turn the official template rewrites later).
    """

    text: str
    turn: int
    response: bool = False
    content: bool = False
    trainable: bool = True
    extra: bool = False  # not part of the official rendering (efficient eos)

    @property
    def trained(self) -> bool:
        return self.response and self.trainable
