"""A chat prompt with pictures, videos or sounds: where their markers go, what is refused, what engines get.

Chats, the web page and the API all hand `ChatModel` messages plus media references (paths, `data:` URLs,
bytes, PIL images). The rules, in one place:

- media given to a text-only model are refused, naming the model (they would otherwise vanish silently);
- a conversation that writes no `<image>` marker at all gets one per picture at the start of its last user
  message, so a caller may just attach a picture to a question; `<video>` and `<audio>` likewise
  (LLaMA-Factory's chat uses the first message: the same one for a single question, while in a longer
  conversation the picture belongs with the question it came with);
- otherwise the markers must match the media by count (`check_marker_counts`), as in training data.

Encoding itself is `data/encode_media.encode_prompt_media`, the same processor call training uses, so a
picture becomes exactly as many tokens as it did while the model was trained.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tunelab.data.conversation import Example, Message, Role
from tunelab.data.encode import encode_prompt
from tunelab.data.encode_media import (
    MediaEncoding,
    check_marker_counts,
    encode_prompt_media,
    processor_inputs,
)
from tunelab.data.media import MARKERS
from tunelab.data.templates.base import Template
from tunelab.errors import UserError
from tunelab.infer.engine import PromptMedia

#: vLLM's modality names for the processor arguments of `processor_inputs`
_VLLM_MODALITY = {"images": "image", "videos": "video", "audio": "audio"}


@dataclass(frozen=True)
class ChatMedia:
    """The media of one conversation, in order of their markers: each a path, `data:` URL, bytes or PIL image."""

    images: tuple[Any, ...] = ()
    videos: tuple[Any, ...] = ()
    audios: tuple[Any, ...] = ()

    @classmethod
    def of(cls, images: Sequence[Any] = (), videos: Sequence[Any] = (), audios: Sequence[Any] = ()) -> ChatMedia:
        return cls(tuple(images or ()), tuple(videos or ()), tuple(audios or ()))

    def __bool__(self) -> bool:
        return bool(self.images or self.videos or self.audios)

    def counts(self) -> dict[str, int]:
        """Files per column ("images" ...), only the columns that have some."""
        return {column: len(getattr(self, column)) for column in MARKERS if getattr(self, column)}

    def describe(self) -> str:
        """'1 image and 2 audios', for messages."""
        words = [f"{n} {column if n > 1 else column[:-1]}" for column, n in self.counts().items()]
        return " and ".join(words)


def has_markers(messages: Sequence[Message]) -> bool:
    """Whether any message writes a `<image>` / `<video>` / `<audio>` marker."""
    return any(marker in (message.content or "") for message in messages for marker in MARKERS.values())


def place_markers(messages: Sequence[Message], media: ChatMedia) -> list[Message]:
    """The messages, with one marker per file put at the start of the last user message for each kind of
    media whose marker the conversation never writes; kinds it writes are left alone."""
    missing = "".join(MARKERS[column] * n for column, n in media.counts().items()
                      if not any(MARKERS[column] in (m.content or "") for m in messages))
    out = list(messages)
    if not missing:
        return out
    last_user = next((i for i in range(len(out) - 1, -1, -1) if out[i].role == Role.USER), None)
    if last_user is None:
        raise UserError(f"the conversation has {media.describe()} but no user message to put them in; "
                        "attach media to a user message.")
    out[last_user] = replace(out[last_user], content=missing + (out[last_user].content or ""))
    return out


def refuse_text_only(model_name: str, media: ChatMedia) -> UserError:
    """The error for media given to a model that reads text only."""
    return UserError(f"model '{model_name}' reads text only, but the conversation has {media.describe()}; chat with "
                     "a vision / audio language model (docs/multimodal.md lists the families), or leave the media out.")


def _tools_text(tools: Any) -> str | None:
    if tools is None or isinstance(tools, str):
        return tools
    return json.dumps(tools, ensure_ascii=False)


def _vllm_media(example: Example, encoding: MediaEncoding) -> dict[str, list[Any]]:
    """The decoded media by vLLM's modality names: PIL images, clips as lists of frames, (waveform, rate)."""
    decoded = processor_inputs(example, encoding.options)
    raw: dict[str, list[Any]] = {}
    for key, modality in _VLLM_MODALITY.items():
        if key in decoded:
            raw[modality] = list(decoded[key])
    if "audio" in raw:
        raw["audio"] = [(wave, encoding.options.audio_sampling_rate) for wave in raw["audio"]]
    return raw


def _placeholder_ids(tokenizer: Any, template: Template, example: Example, encoding: MediaEncoding,
                     enable_thinking: bool) -> list[int]:
    """The prompt with each marker replaced by the family's placeholder, not expanded (vLLM expands it)."""
    messages = []
    for message in example.messages:
        text = message.content or ""
        for marker, placeholder in encoding.placeholders.items():
            text = text.replace(marker, placeholder)
        messages.append(replace(message, content=text))
    return encode_prompt(tokenizer, template, messages, system=example.system, tools=example.tools,
                         enable_thinking=enable_thinking)


def media_prompt(
    tokenizer: Any,
    template: Template,
    encoding: MediaEncoding,
    messages: Sequence[Message],
    media: ChatMedia,
    *,
    system: str | None = None,
    tools: Any = None,
    enable_thinking: bool = True,
    raw: bool = False,
) -> tuple[list[int], PromptMedia]:
    """The expanded prompt ids and the media in the engine's form (`raw`: also vLLM's form)."""
    example = Example(messages=tuple(place_markers(messages, media)), system=system, tools=_tools_text(tools),
                      images=media.images, videos=media.videos, audios=media.audios)
    check_marker_counts(example)
    ids, tensors = encode_prompt_media(tokenizer, template, example, encoding, enable_thinking=enable_thinking)
    if not raw:
        return ids, PromptMedia(tensors=tensors)
    return ids, PromptMedia(tensors=tensors, raw=_vllm_media(example, encoding),
                            placeholder_ids=_placeholder_ids(tokenizer, template, example, encoding, enable_thinking))
