"""Encoding examples that carry images, videos or audios: the token side, with the processor as the oracle.

A data set writes one `<image>` marker per image file. Each marker becomes the text the model family's
processor expects (`placeholders`, from `model/multimodal.py`), the conversation is rendered by the
template as any other, and then the processor itself expands every placeholder (`replace_image_token`,
through its own `__call__` with `return_text_replacement_offsets`): a picture becomes exactly as many
tokens as the processor says, with exactly its wrapping, so "image features and image tokens do not
match" cannot happen. Only where the expansions land is read from the processor; the ids are then made
by `encode_tokens` from the expanded segments, so every token still knows its turn and whether it is
trained. Media tokens are markup: never trained, kept or dropped whole by truncation, and an example
whose media would not fit in `cutoff_len` is refused by row rather than cut through a picture.

The pixels themselves are not kept: rows store the media references, and the collator
(`media_batch`) decodes and processes them per batch, in the data loader's worker processes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tunelab.data.conversation import Example, Message, Role
from tunelab.data.encode import EncodeOptions, labels_of, render_segments
from tunelab.data.encode_tokens import tokenize_segments
from tunelab.data.encode_truncate import truncate
from tunelab.data.media import MARKERS, MediaOptions, load_audio, load_image, load_video
from tunelab.data.templates.base import Segment, Template
from tunelab.errors import UserError

#: the columns of an encoded row that name its media (the collator loads them)
MEDIA_KEYS = ("images", "videos", "audios")
#: the markers of an encoded row in the order they appear in its text (e.g. "<image><image><video>")
MARKER_ORDER_KEY = "media_markers"
_KIND_OF_MARKER = {marker: column for column, marker in MARKERS.items()}
#: outputs of a processor that are per text token, not media tensors: built again for the real batch
PER_TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids", "text_replacement_offsets")
#: every media input a supported family's forward takes (what a batch carries besides its text keys)
MEDIA_INPUT_NAMES = (
    "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "image_sizes",
    "input_features", "feature_attention_mask", "mm_token_type_ids", "token_type_ids",
)


@dataclass(frozen=True)
class MediaEncoding:
    """What encoding media needs besides the tokenizer and template: the family's processor, the text each
    marker becomes for it, and the media keys (sizes, frame rate, sampling rate)."""

    processor: Any
    placeholders: Mapping[str, str]  # data marker ("<image>") -> the processor's placeholder text
    options: MediaOptions
    processor_kwargs: Mapping[str, Any] = field(default_factory=dict)  # e.g. Gemma 3's do_pan_and_scan

    def cache_id(self) -> str:
        """What changes the token side of an encoded row (part of the tokenized-data cache key)."""
        image = getattr(self.processor, "image_processor", None)
        return f"{type(self.processor).__name__}|{dict(self.placeholders)!r}|{self.options!r}|" \
               f"{dict(self.processor_kwargs)!r}|{image.to_json_string() if image is not None else ''}"


def has_media(example: Example) -> bool:
    return bool(example.images or example.videos or example.audios)


_ANY_MARKER = re.compile("|".join(re.escape(m) for m in MARKERS.values()))


def marker_order(messages: Sequence[Message]) -> list[str]:
    """Every marker of the conversation's text, in reading order."""
    return [match.group(0) for message in messages for match in _ANY_MARKER.finditer(message.content or "")]


def _with_placeholders(messages: Sequence[Message], placeholders: Mapping[str, str], source: str) -> list[Message]:
    out = []
    for message in messages:
        text = message.content or ""
        for marker in MARKERS.values():
            if marker in text:
                if marker not in placeholders:
                    kinds = ", ".join(_KIND_OF_MARKER[m] for m in placeholders) or "no media"
                    raise UserError(f"{source}: {_KIND_OF_MARKER[marker]}: this model takes {kinds}, not "
                                    f"{_KIND_OF_MARKER[marker]}; remove that column or use a model that reads it.")
                text = text.replace(marker, placeholders[marker])
        out.append(replace(message, content=text))
    return out


def check_processor_reads(example: Example, media: MediaEncoding, source: str) -> None:
    """Videos need the processor's video part, which transformers builds on torchvision: without it the
    processor would skip the videos and leave their placeholders unexpanded, so refuse by row instead."""
    if example.videos and getattr(media.processor, "video_processor", None) is None:
        raise UserError(f"{source}: videos: this model's processor has no video part here, because transformers' "
                        "video processors need torchvision, which is not installed; install the torchvision build "
                        "made for your torch (pip install torchvision), or remove the videos.")


def processor_inputs(example: Example, options: MediaOptions) -> dict[str, Any]:
    """The decoded media of one example as the processor's `images` / `videos` / `audio` arguments."""
    inputs: dict[str, Any] = {}
    if example.images:
        inputs["images"] = [load_image(ref, options) for ref in example.images]
    if example.videos:
        clips = [load_video(ref, options) for ref in example.videos]
        inputs["videos"] = [clip.frames for clip in clips]
        inputs["video_metadata"] = [{"fps": clip.fps, "total_num_frames": len(clip.frames),
                                     "frames_indices": list(range(len(clip.frames)))} for clip in clips]
        inputs["do_sample_frames"] = False  # frames were sampled by video_fps / video_maxlen already
    if example.audios:
        inputs["audio"] = [load_audio(ref, options) for ref in example.audios]
        inputs["sampling_rate"] = options.audio_sampling_rate
    return inputs


def _expanded_segments(segments: Sequence[Segment], offsets: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """The segments with each placeholder replaced by the processor's expansion, as a markup segment of its
    own (never trained, never cut in half)."""
    out: list[Segment] = []
    spans = sorted((int(o["span"][0]), int(o["span"][1]), str(o["replacement"])) for o in offsets)
    position = 0
    index = 0
    for segment in segments:
        start, end = position, position + len(segment.text)
        cursor = start
        while index < len(spans) and spans[index][0] < end:
            span_start, span_end, replacement = spans[index]
            if span_start < cursor or span_end > end:
                raise UserError(f"the processor's media placeholder at characters {span_start}..{span_end} crosses "
                                "the template's markup; the template does not fit this model's processor (use the "
                                "family's template name, or template: auto).")
            if span_start > cursor:
                out.append(replace(segment, text=segment.text[cursor - start : span_start - start]))
            out.append(Segment(replacement, segment.turn, response=segment.response, content=False, trainable=False))
            cursor = span_end
            index += 1
        if cursor < end:
            out.append(replace(segment, text=segment.text[cursor - start :]))
        position = end
    return out


def media_token_ids(processor: Any) -> set[int]:
    """The ids a processor repeats for media (image / video / audio pads): what must survive truncation."""
    ids = set()
    for modality in ("image", "video", "audio"):
        value = getattr(processor, f"{modality}_token_id", None)
        if isinstance(value, int):
            ids.add(value)
    tokenizer_image = getattr(getattr(processor, "tokenizer", None), "image_token_id", None)
    if isinstance(tokenizer_image, int):
        ids.add(tokenizer_image)
    return ids


def encode_supervised_media(
    tokenizer: Any, template: Template, example: Example, media: MediaEncoding, options: EncodeOptions
) -> dict[str, Any]:
    """`input_ids`, `attention_mask`, `labels` of a conversation with media, plus the media references and
    marker order the collator needs (see the module docstring)."""
    source = str(example.source) if example.source else "an example"
    messages = example.messages
    if not messages or messages[-1].role not in (Role.ASSISTANT, Role.FUNCTION):
        raise UserError(f"{source}: a supervised example must end with an assistant (or function_call) turn")
    order = marker_order(messages)
    check_processor_reads(example, media, source)
    segments = render_segments(
        tokenizer, template, _with_placeholders(messages, media.placeholders, source),
        system=example.system, tools=example.tools, enable_thinking=options.enable_thinking,
    )  # fmt: skip
    text = "".join(segment.text for segment in segments)
    try:
        out = media.processor(text=[text], **processor_inputs(example, media.options), **media.processor_kwargs,
                              return_text_replacement_offsets=True, add_special_tokens=False)
    except (ValueError, TypeError) as error:
        raise UserError(f"{source}: the model's processor refused this example: {error}") from None
    expanded = _expanded_segments(segments, out["text_replacement_offsets"][0])
    tokens = tokenize_segments(tokenizer, expanded)
    pad_ids = media_token_ids(media.processor)
    kept = truncate(tokens, options.cutoff_len, last_first=options.mask_history)
    before = sum(token.id in pad_ids for token in tokens)
    if sum(token.id in pad_ids for token in kept) != before:
        raise UserError(f"{source}: its media take {before} tokens and the whole example {len(tokens)}, more than "
                        f"cutoff_len {options.cutoff_len} leaves for them; cutting would separate pictures from "
                        "their tokens. Raise cutoff_len, or lower image_max_pixels / video_max_pixels / video_maxlen.")
    labels = labels_of(kept, train_on_prompt=options.train_on_prompt, last_turn_only=options.mask_history)
    return {
        "input_ids": [t.id for t in kept], "attention_mask": [1] * len(kept), "labels": labels,
        "images": list(example.images), "videos": list(example.videos), "audios": list(example.audios),
        MARKER_ORDER_KEY: "".join(order),
    }  # fmt: skip


def encode_prompt_media(
    tokenizer: Any, template: Template, example: Example, media: MediaEncoding, *, enable_thinking: bool = True
) -> tuple[list[int], dict[str, Any]]:
    """A conversation with media, ending with the generation prompt: its token ids and the media tensors
    (`pixel_values`, ...) `generate` takes with them, from one processor call (inference and serving)."""
    source = str(example.source) if example.source else "the conversation"
    check_processor_reads(example, media, source)
    segments = render_segments(
        tokenizer, template, _with_placeholders(example.messages, media.placeholders, source), system=example.system,
        tools=example.tools, add_generation_prompt=True, enable_thinking=enable_thinking, training=False,
    )  # fmt: skip
    text = "".join(segment.text for segment in segments)
    try:
        out = media.processor(text=[text], **processor_inputs(example, media.options), **media.processor_kwargs,
                              return_tensors="pt", return_text_replacement_offsets=True, add_special_tokens=False)
    except (ValueError, TypeError) as error:
        raise UserError(f"{source}: the model's processor refused the media: {error}") from None
    tokens = tokenize_segments(tokenizer, _expanded_segments(segments, out["text_replacement_offsets"][0]))
    ids = [token.id for token in tokens]
    inputs = {key: value for key, value in out.items() if key in MEDIA_INPUT_NAMES and key not in PER_TOKEN_KEYS}
    for key in per_token_keys(media):
        import torch

        inputs[key] = torch.tensor(media.processor.create_mm_token_type_ids([ids]), dtype=torch.long)
    return ids, inputs


def check_marker_counts(example: Example) -> None:
    """Refuse a conversation whose `<image>` / `<video>` / `<audio>` markers do not match its media, by count."""
    order = marker_order(example.messages)
    for column, marker in MARKERS.items():
        markers, files = order.count(marker), len(getattr(example, column))
        if markers != files:
            where = str(example.source) if example.source else "the conversation"
            raise UserError(f"{where}: {column}: {markers} {marker} marker(s) in the text but {files} file(s); "
                            f"write one {marker} where each goes.")


def _row_example(row: Mapping[str, Any]) -> Example:
    return Example(messages=(), images=tuple(row.get("images") or ()), videos=tuple(row.get("videos") or ()),
                   audios=tuple(row.get("audios") or ()))


def row_media(row: Mapping[str, Any], media: MediaEncoding) -> dict[str, Any]:
    """One encoded row's media tensors (empty for a text-only row): the processor run on the row's
    placeholders alone, its text side thrown away, so the tensors are those the row had when encoded."""
    order = row.get(MARKER_ORDER_KEY) or ""
    if not order:
        return {}
    text = "".join(media.placeholders[m] for m in _split_markers(order))
    out = media.processor(text=[text], **processor_inputs(_row_example(row), media.options), **media.processor_kwargs,
                          return_tensors="pt", add_special_tokens=False)
    part = {key: value for key, value in out.items() if key not in PER_TOKEN_KEYS}
    unknown = set(part) - set(MEDIA_INPUT_NAMES)
    if unknown:  # a family whose processor returns a new input: add it to MEDIA_INPUT_NAMES
        raise RuntimeError(f"{type(media.processor).__name__} returned media inputs tunelab does not pass on: "
                           f"{sorted(unknown)}")
    return part


def per_token_keys(media: MediaEncoding) -> tuple[str, ...]:
    """The per-token type ids the family's forward reads (`mm_token_type_ids`, Gemma 3's `token_type_ids`),
    as the processor names them."""
    names = getattr(media.processor, "model_input_names", ()) or ()
    return tuple(key for key in ("mm_token_type_ids", "token_type_ids") if key in names)


def media_batch(parts: Sequence[Mapping[str, Any]], input_ids: Any, media: MediaEncoding) -> dict[str, Any]:
    """The media tensors of a batch whose rows' media (`row_media`) are `parts`, in the order their tokens
    appear in the batch (row-major): what the processor returns for those media, joined along the first
    dimension (the image / patch / clip dimension of every family's tensors, padded where tile counts
    differ), plus the per-token type ids built for the batch's real `input_ids` by the processor's own
    rule (`create_mm_token_type_ids`)."""
    import torch

    batch: dict[str, Any] = {}
    for key in dict.fromkeys(key for part in parts for key in part):
        values = [part[key] for part in parts if key in part]
        batch[key] = _join(values) if isinstance(values[0], torch.Tensor) else [v for value in values for v in value]
    ids = input_ids.tolist() if hasattr(input_ids, "tolist") else input_ids
    for key in per_token_keys(media):
        batch[key] = torch.tensor(media.processor.create_mm_token_type_ids(ids), dtype=torch.long)
    return batch


def _split_markers(order: str) -> list[str]:
    markers, rest = [], order
    while rest:
        marker = next((m for m in MARKERS.values() if rest.startswith(m)), None)
        if marker is None:
            raise ValueError(f"bad media marker order {order!r}")
        markers.append(marker)
        rest = rest[len(marker):]
    return markers


def _join(values: list[Any]) -> Any:
    """Tensors of several rows along dim 0, zero-padding the other dims where they differ (LLaVA-NeXT's
    tile count varies by picture: the model reads only each picture's own tiles, by `image_sizes`)."""
    import torch

    if len(values) == 1:
        return values[0]
    shapes = {tuple(v.shape[1:]) for v in values}
    if len(shapes) == 1:
        return torch.cat(values, dim=0)
    widest = [max(v.shape[d] for v in values) for d in range(1, values[0].dim())]
    padded = []
    for value in values:
        pad: list[int] = []
        for d in reversed(range(1, value.dim())):
            pad.extend([0, widest[d - 1] - value.shape[d]])
        padded.append(torch.nn.functional.pad(value, pad))
    return torch.cat(padded, dim=0)
