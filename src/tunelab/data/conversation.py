"""The one internal conversation type every data format is converted into before templating.

Keeping a single type lets each loader (alpaca, sharegpt, openai, plain text) and each template
be written once: loaders produce `Example`s, templates and encoders consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Role(str, Enum):
    """Who speaks a turn. `FUNCTION` is an assistant's tool call, `OBSERVATION` a tool's result."""

    USER = "user"
    ASSISTANT = "assistant"
    FUNCTION = "function_call"
    OBSERVATION = "observation"


@dataclass(frozen=True)
class Message:
    """One turn. For `FUNCTION` turns `content` is JSON: one call or a list of calls, each
    `{"name": ..., "arguments": {...}}`."""

    role: Role
    content: str


@dataclass(frozen=True)
class Source:
    """Where an example came from, so every problem can be reported as `file:row: field: reason`."""

    dataset: str
    file: str
    row: int  # 1-based row (JSON array index + 1, or line number for jsonl/txt/csv)

    def __str__(self) -> str:
        return f"{self.file}:{self.row}"


@dataclass(frozen=True)
class Example:
    """One training example in tunelab's internal form.

    - supervised: `messages` alternate user/observation and assistant/function turns and end with
      an assistant (or function) turn.
    - preference (`chosen` and `rejected` set): `messages` end with the prompt turn; `chosen` and
      `rejected` are the two candidate responses.
    - kto (`kto_tag` set): a supervised example plus whether its last response is desirable.
    - pre-training (`text` set): plain text, no turns.
    """

    messages: tuple[Message, ...] = ()
    system: str | None = None
    tools: str | None = None  # JSON list of tool schemas, as the data set gives it
    chosen: Message | None = None
    rejected: Message | None = None
    kto_tag: bool | None = None
    text: str | None = None
    images: tuple[str, ...] = ()
    videos: tuple[str, ...] = ()
    audios: tuple[str, ...] = ()
    source: Source | None = field(default=None, compare=False)

    @property
    def is_preference(self) -> bool:
        return self.chosen is not None or self.rejected is not None

    @property
    def is_pretraining(self) -> bool:
        return self.text is not None
