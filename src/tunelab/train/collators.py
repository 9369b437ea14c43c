"""Batches for the trainer: padded rows, or packed rows with per-example positions and masks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
TOKEN_COUNT_KEY = "num_tokens"  # popped by TunelabTrainer before the forward pass


@dataclass
class PaddingCollator:
    """Right-pads input_ids with the pad token and labels with -100."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def _target_length(self, longest: int) -> int:
        if self.pad_to_multiple_of:
            return -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        return longest

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        length = self._target_length(max(len(f["input_ids"]) for f in features))
        input_ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.tensor(feature.get("labels", feature["input_ids"]), dtype=torch.long)
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                TOKEN_COUNT_KEY: attention_mask.sum()}


@dataclass
class PackedCollator:
    """Packed rows (`segment_lengths`): position ids restart at every example; attention stays inside it.

    With flash-attention the position ids alone mark the boundaries (varlen kernels); for sdpa and
    eager a block-diagonal causal mask of the model's dtype is passed instead.
    """

    pad_token_id: int
    varlen_attention: bool = False
    mask_dtype: Any = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        batch = len(features)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((batch, length), dtype=torch.long)
        segment = torch.full((batch, length), -1, dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.tensor(feature["labels"], dtype=torch.long)
            start = 0
            for index, seg_len in enumerate(feature["segment_lengths"]):
                position_ids[row, start : start + seg_len] = torch.arange(seg_len)
                segment[row, start : start + seg_len] = index
                start += seg_len
        out = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
               TOKEN_COUNT_KEY: (segment >= 0).sum()}
        if self.varlen_attention and batch == 1:
            return out
        dtype = self.mask_dtype or torch.float32
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
        allowed = same & causal
        # padding rows attend to themselves only, so softmax never sees an all-masked row
        allowed |= torch.eye(length, dtype=torch.bool)[None]
        mask = torch.zeros((batch, 1, length, length), dtype=dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
        out["attention_mask"] = mask
        return out


@dataclass
class PaddingFreeCollator:
    """The batch's own examples packed into as few rows as they fit: no padding, no attention across
    examples, and the same examples per optimizer step as padded batching (unlike `packing`).

    With varlen attention (flash-attention) the whole batch is one row and the cost is Σ lengthᵢ².
    Otherwise rows hold at most the batch's longest example, so the padded tensor has no more rows
    (and no longer rows) than padding would give, and each row's mask is no larger.
    """

    pad_token_id: int
    varlen_attention: bool = False
    mask_dtype: Any = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [{"input_ids": f["input_ids"], "labels": f.get("labels", f["input_ids"])} for f in features]
        return pack_batch(rows, self.pad_token_id, self.varlen_attention, self.mask_dtype)[0]


def pack_batch(rows: list[dict[str, Any]], pad_token_id: int, varlen_attention: bool = False,
               mask_dtype: Any = None) -> tuple[dict[str, Any], list[list[int]]]:
    """One batch's sequences (`input_ids`, `labels`) packed without padding, and which went in each row.

    Rows hold every sequence with varlen attention, else at most the longest one (see PaddingFreeCollator).
    """
    from tunelab.train.packing import assemble_rows, pack_indices

    lengths = [len(row["input_ids"]) for row in rows]
    groups = pack_indices(lengths, sum(lengths) if varlen_attention else max(lengths))
    return PackedCollator(pad_token_id, varlen_attention, mask_dtype)(assemble_rows(rows, groups)), groups


def uses_varlen_attention(model: Any) -> bool:
    """Whether the model's attention takes packed rows from position ids alone (no mask needed)."""
    return getattr(model.config, "_attn_implementation", "") in ("flash_attention_2", "flash_attention_3")


def lm_collator(prepared: Any, tokenizer: Any, model: Any, config: Any) -> Any:
    """Collator of the language-modelling stages (pt, sft): packed rows, padding-free batches or padded rows."""
    varlen = uses_varlen_attention(model)
    if prepared.packed:
        return PackedCollator(pad_token_id=tokenizer.pad_token_id, varlen_attention=varlen, mask_dtype=model.dtype)
    if config is not None and config.data.padding_free:
        return PaddingFreeCollator(pad_token_id=tokenizer.pad_token_id, varlen_attention=varlen, mask_dtype=model.dtype)
    return PaddingCollator(pad_token_id=tokenizer.pad_token_id)
