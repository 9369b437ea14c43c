"""Golden tests per family: what tunelab encodes equals what the family's own processor produces.

For every family of `model/multimodal.py`: the token ids of an encoded example equal the processor's
ids for the same rendered text and media (so each picture has exactly the tokens the model expects),
the collated batch carries exactly the processor's media tensors, media tokens are never trained, an
example whose media would not fit `cutoff_len` is refused by row, and text-only rows mix with media rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tunelab.data.conversation import Example, Message, Role, Source
from tunelab.data.encode import EncodeOptions
from tunelab.data.encode_media import (
    MediaEncoding,
    encode_supervised_media,
    media_batch,
    media_token_ids,
    processor_inputs,
    row_media,
)
from tunelab.data.labels import IGNORE_INDEX
from tunelab.data.media import MediaOptions
from tunelab.data.templates import get_template
from tunelab.errors import UserError
from tunelab.model.multimodal import FAMILIES, multimodal_family
from tunelab.model.processor import load_processor

FAMILY_NAMES = [family.name for family in FAMILIES]


def _media(vlm, name: str) -> tuple[MediaEncoding, object]:
    family = multimodal_family(name)
    processor = load_processor(str(vlm(name)), family, {})
    template = get_template(family.templates[0], processor.tokenizer)
    return MediaEncoding(processor, dict(family.placeholders), MediaOptions()), template


def _tone(seconds: float) -> np.ndarray:
    return np.sin(np.linspace(0, 2 * math.pi * 440 * seconds, int(16000 * seconds))).astype(np.float32)


def _example(name: str, tmp_path, row: int = 1) -> Example:
    """Two media in the first user turn and one in the second, of different sizes."""
    if name == "qwen2_audio":
        import wave

        files = []
        for index, seconds in enumerate((1.0, 0.5, 2.0)):
            path = tmp_path / f"{index}.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16000)
                out.writeframes((_tone(seconds) * 20000).astype("<i2").tobytes())
            files.append(str(path))
        marker, column = "<audio>", "audios"
    else:
        files = []
        for index, size in enumerate(((40, 30), (56, 56), (30, 60))):
            path = tmp_path / f"{index}.png"
            Image.new("RGB", size, (40 * index, 90, 200)).save(path)
            files.append(str(path))
        marker, column = "<image>", "images"
    messages = (Message(Role.USER, f"{marker}{marker}Compare these."), Message(Role.ASSISTANT, "The first is darker."),
                Message(Role.USER, f"And this one?{marker}"), Message(Role.ASSISTANT, "It is taller."))
    return Example(messages=messages, source=Source("d", str(tmp_path / "d.json"), row), **{column: tuple(files)})


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_token_ids_are_the_processors_own(name: str, vlm, tmp_path) -> None:
    media, template = _media(vlm, name)
    example = _example(name, tmp_path)
    row = encode_supervised_media(media.processor.tokenizer, template, example, media, EncodeOptions(cutoff_len=100000))
    # the oracle: the same conversation rendered with the family's placeholders, expanded and tokenized by
    # the processor in one call
    from tunelab.data.encode import render_segments
    from tunelab.data.encode_media import _with_placeholders

    segments = render_segments(media.processor.tokenizer, template,
                               _with_placeholders(example.messages, media.placeholders, "x"))
    text = "".join(segment.text for segment in segments)
    oracle = media.processor(text=[text], **processor_inputs(example, media.options), add_special_tokens=False)
    assert row["input_ids"] == list(oracle["input_ids"][0])
    pads = media_token_ids(media.processor)
    assert sum(i in pads for i in row["input_ids"]) > 3  # every medium became several tokens
    assert all(label == IGNORE_INDEX for i, label in zip(row["input_ids"], row["labels"]) if i in pads)
    trained = media.processor.tokenizer.decode([label for label in row["labels"] if label != IGNORE_INDEX])
    assert "The first is darker." in trained and "It is taller." in trained
    assert row["media_markers"] == ("<audio>" if name == "qwen2_audio" else "<image>") * 3


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_a_batch_carries_exactly_the_processors_media_tensors(name: str, vlm, tmp_path) -> None:
    media, template = _media(vlm, name)
    first, second = _example(name, tmp_path), _example(name, tmp_path, row=2)
    second = Example(messages=second.messages[:2], images=second.images[1:3], audios=second.audios[1:3],
                     source=second.source)
    text_only = Example(messages=(Message(Role.USER, "Hi"), Message(Role.ASSISTANT, "Hello")))
    tokenizer = media.processor.tokenizer
    rows = [encode_supervised_media(tokenizer, template, e, media, EncodeOptions(cutoff_len=100000))
            for e in (first, second)]
    rows.append({"images": [], "videos": [], "audios": [], "media_markers": ""})
    assert text_only.images == ()
    ids = [row.get("input_ids", [tokenizer.pad_token_id] * 3) for row in rows]
    width = max(map(len, ids))
    padded = torch.tensor([i + [tokenizer.pad_token_id] * (width - len(i)) for i in ids])
    batch = media_batch([row_media(row, media) for row in rows], padded, media)
    kind = "audio" if name == "qwen2_audio" else "images"
    refs = [*first.audios, *second.audios] if name == "qwen2_audio" else [*first.images, *second.images]
    oracle = media.processor(text=["".join(media.placeholders[m] for m in ["<audio>" if kind == "audio" else "<image>"]
                                           * len(refs))],
                             **processor_inputs(Example(**{("audios" if kind == "audio" else "images"): tuple(refs)}),
                                                media.options), return_tensors="pt", add_special_tokens=False)
    for key, value in oracle.items():
        if key in ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids"):
            continue
        assert key in batch, key
        got = batch[key]
        if isinstance(value, torch.Tensor) and value.shape != got.shape:  # tiles padded to the batch's widest
            got = got[tuple(slice(0, n) for n in value.shape)]
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(value)), key
    for key in ("mm_token_type_ids", "token_type_ids"):  # per token, for the real (padded) batch
        if key in batch:
            assert batch[key].shape == padded.shape
            for index, row_ids in enumerate(ids[:2]):
                own = media.processor.create_mm_token_type_ids([row_ids])[0]
                assert batch[key][index, : len(row_ids)].tolist() == own and sum(own) > 0
                assert batch[key][index, len(row_ids):].sum() == 0


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_media_that_would_be_cut_are_refused_by_row(name: str, vlm, tmp_path) -> None:
    media, template = _media(vlm, name)
    example = _example(name, tmp_path, row=7)
    full = encode_supervised_media(media.processor.tokenizer, template, example, media, EncodeOptions(cutoff_len=100000))
    pads = sum(i in media_token_ids(media.processor) for i in full["input_ids"])
    with pytest.raises(UserError) as info:
        encode_supervised_media(media.processor.tokenizer, template, example, media,
                                EncodeOptions(cutoff_len=pads // 2))
    message = str(info.value)
    assert f"{tmp_path / 'd.json'}:7" in message and "cutoff_len" in message and "Raise cutoff_len" in message
