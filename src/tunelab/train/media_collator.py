"""Batches of examples with images, videos or audios: the text collated as for any model, the media
decoded and processed here, per batch.

The collator runs in the data loader's worker processes when `dataloader_num_workers` > 0, so decoding
and resizing overlap the training step instead of stalling it; the token side was encoded (and cached)
once, ahead of training (`data/encode_media.py`).

Padding-free batches (`padding_free: true`, families whose record allows it: Qwen's) pack the batch's
examples into as few rows as they fit, like text batches (`data/batching.pack_batch`). Qwen's rotary
positions are 3-D (time, height, width of each picture), so they are computed per example by the
model's own `get_rope_index` and laid side by side, with the plain 1-D positions in front: the
`[4, rows, T]` layout transformers' Qwen-VL models read as "packed" and build block-diagonal attention from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunelab.data.batching import TOKEN_COUNT_KEY, pack_batch
from tunelab.data.encode_media import MARKER_ORDER_KEY, MEDIA_KEYS, MediaEncoding, media_batch, row_media

#: the text columns of an encoded multimodal row (the rest name its media)
TEXT_KEYS = ("input_ids", "attention_mask", "labels")


def _media_rows(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: f.get(k) for k in (*MEDIA_KEYS, MARKER_ORDER_KEY)} for f in features]


@dataclass
class MediaCollator:
    """`text` collates the token side (padding, as for a text model); the media tensors are added."""

    text: Any
    media: MediaEncoding

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.text([{k: f[k] for k in TEXT_KEYS if k in f} for f in features])
        parts = [row_media(row, self.media) for row in _media_rows(features)]
        batch.update(media_batch(parts, batch["input_ids"], self.media))
        return batch


def rope_index_of(model: Any) -> Callable[..., Any] | None:
    """The model's own 3-D rotary position function (Qwen-VL's `get_rope_index`), None when it has none."""
    for module in model.modules():
        function = getattr(module, "get_rope_index", None)
        if callable(function):
            return function
    return None


@dataclass
class MediaPaddingFreeCollator:
    """The batch's examples packed into rows without padding, each example's 3-D rotary positions its own
    (see the module docstring)."""

    pad_token_id: int
    media: MediaEncoding
    rope_index: Callable[..., Any]
    varlen_attention: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [{"input_ids": f["input_ids"], "labels": f.get("labels", f["input_ids"])} for f in features]
        batch, groups = pack_batch(rows, self.pad_token_id, self.varlen_attention)
        media_rows = _media_rows(features)
        order = [index for members in groups for index in members]  # the order media tokens appear in the batch
        parts = {index: row_media(media_rows[index], self.media) for index in order}
        positions = torch.zeros((3, *batch["input_ids"].shape), dtype=torch.long)
        for row, members in enumerate(groups):
            start = 0
            for index in members:
                length = len(rows[index]["input_ids"])
                positions[:, row, start : start + length] = self._positions(rows[index]["input_ids"], parts[index])
                start += length
        batch.update(media_batch([parts[index] for index in order], batch["input_ids"], self.media))
        batch["position_ids"] = torch.cat([batch["position_ids"][None], positions], dim=0)
        batch.setdefault(TOKEN_COUNT_KEY, torch.tensor(sum(len(r["input_ids"]) for r in rows)))
        return batch

    def _positions(self, input_ids: list[int], part: dict[str, Any]) -> Any:
        """One example's [3, length] rotary positions, as the model computes them for it alone."""
        import torch

        ids = torch.tensor([input_ids], dtype=torch.long)
        if not part:  # a text-only example: the three rows are its plain positions
            return torch.arange(len(input_ids)).expand(3, -1)
        types = torch.tensor(self.media.processor.create_mm_token_type_ids([input_ids]), dtype=torch.long)
        position_ids, _ = self.rope_index(ids, mm_token_type_ids=types, image_grid_thw=part.get("image_grid_thw"),
                                          video_grid_thw=part.get("video_grid_thw"),
                                          attention_mask=torch.ones_like(ids))
        return position_ids[:, 0, :]
