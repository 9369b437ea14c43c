"""Batching, for every collator and every batch tunelab builds: padding, packing, padding-free rows.

Three layouts of the same sequences:

- padded: one row per sequence, right-padded (training, scoring) or left-padded (generation, so
  every prompt ends in the last column and generation continues all rows at once);
- packed (`packing`): examples joined into rows of at most `cutoff_len` tokens before training;
  each row records its examples' lengths (`segment_lengths`);
- padding-free (the default of sft, rm, dpo, kto): one batch's own sequences packed into as few
  rows as they fit.

Packed and padding-free rows restart position ids at every example and carry no attention mask:
transformers derives each layer's mask from the position ids (see `packed_batch`), so for a model
that honours them (`model/packing_isolation.py` decides, by table or by a probe) a packed batch computes
exactly what the unpacked examples would, without spending compute on padding. `torch` is imported inside the functions that build tensors: the data
layer's pure-Python paths (`tunelab data check`) never load it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from tunelab.data.labels import IGNORE_INDEX

TOKEN_COUNT_KEY = "num_tokens"  # non-padding tokens of a batch; popped by TunelabTrainer before the forward pass
SEQUENCE_INDEX_KEY = "sequence_index"  # padding-free batches of several sequences: each token's sequence (-1: padding)

#: (input ids, labels) of one sequence; labels None means "train every token" (labels = ids)
Row = tuple[Sequence[int], Sequence[int] | None]


# -- padding ------------------------------------------------------------------------------------------


def pad_right(rows: Sequence[Row], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """`input_ids`, `attention_mask`, `labels` [rows, T]: each sequence from column 0, padding after it
    (pad token in the ids, -100 in the labels, 0 in the mask)."""
    import torch

    length = max(len(ids) for ids, _ in rows)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for index, (ids, labs) in enumerate(rows):
        input_ids[index, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        labs = ids if labs is None else labs
        labels[index, : len(labs)] = torch.tensor(list(labs), dtype=torch.long)
        attention_mask[index, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pad_left(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[Any, Any]:
    """`input_ids` and `attention_mask` of prompts padded on the left, so every prompt ends in the last column."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


# -- packing ------------------------------------------------------------------------------------------


def chunk_tokens(ids: Sequence[int], size: int) -> list[list[int]]:
    """Split one long pre-training text into pieces of at most `size` tokens (nothing is dropped)."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def pack_indices(lengths: Sequence[int], cutoff_len: int) -> list[list[int]]:
    """Greedy best-fit packing, longest first: the indices of the items in each row of at most `cutoff_len`."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    rows: list[list[int]] = []  # item indices per row
    free: list[tuple[int, int]] = []  # sorted (free space, row index)
    for index in order:
        length = lengths[index]
        if length > cutoff_len:
            raise ValueError(f"example of {length} tokens is longer than cutoff_len={cutoff_len}")
        slot = bisect.bisect_left(free, (length, -1))
        if slot < len(free):
            space, row = free.pop(slot)
            rows[row].append(index)
            bisect.insort(free, (space - length, row))
        else:
            rows.append([index])
            bisect.insort(free, (cutoff_len - length, len(rows) - 1))
    return rows


def pack_examples(examples: Sequence[dict[str, Any]], cutoff_len: int) -> list[dict[str, Any]]:
    """Greedy best-fit packing, longest examples first, into rows of at most `cutoff_len` tokens."""
    return assemble_rows(examples, pack_indices([len(example["input_ids"]) for example in examples], cutoff_len))


def assemble_rows(examples: Sequence[dict[str, Any]], groups: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    """One packed row per group of example indices, with each example's length in `segment_lengths`.

    The first label of every example is set to -100: in an unpacked row that position is never a
    prediction target (nothing precedes it), and in a packed row it must not become one.
    """
    packed = []
    for members in groups:
        input_ids: list[int] = []
        labels: list[int] = []
        lengths: list[int] = []
        for index in members:
            example = examples[index]
            input_ids.extend(example["input_ids"])
            labels.append(IGNORE_INDEX)
            labels.extend(example["labels"][1:])
            lengths.append(len(example["input_ids"]))
        packed.append({"input_ids": input_ids, "labels": labels, "segment_lengths": lengths})
    return packed


def packed_batch(features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Packed rows (`segment_lengths`) as tensors: position ids restart at every example, and no attention mask.

    Without a mask, transformers builds each layer's mask itself from the restarting position ids
    (`masking_utils.find_packed_sequence_indices`): block-diagonal causal for full attention, and the
    sliding window counted inside each example for sliding layers (a hand-made 4D mask is applied to
    every layer alike, so Mistral / Gemma / Starcoder2 windows would be lost; measured 5e-2 on a tiny
    Mistral with a window of 8). Flash-attention's varlen kernels read the same position ids. Padding
    at a row's end gets position 0 at every token, so each padding token is a sequence of its own.
    That detection only runs without a KV cache, hence `use_cache: False` in the batch. Whether a
    model honours it is `model/packing_isolation.py`'s question.
    """
    import torch

    length = max(len(f["input_ids"]) for f in features)
    batch = len(features)
    input_ids = torch.full((batch, length), pad_token_id, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((batch, length), dtype=torch.long)
    tokens = 0
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        input_ids[row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
        labels[row, :n] = torch.tensor(feature["labels"], dtype=torch.long)
        start = 0
        for seg_len in feature["segment_lengths"]:
            position_ids[row, start : start + seg_len] = torch.arange(seg_len)
            start += seg_len
        tokens += start
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
            TOKEN_COUNT_KEY: torch.tensor(tokens), "use_cache": False}


def split_packed_rows(features: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The examples of packed rows, one per entry again (for a model that cannot keep them apart)."""
    examples = []
    for feature in features:
        start = 0
        for seg_len in feature["segment_lengths"]:
            examples.append({"input_ids": list(feature["input_ids"][start : start + seg_len]),
                             "labels": list(feature["labels"][start : start + seg_len])})
            start += seg_len
    return examples


def pack_batch(rows: list[dict[str, Any]], pad_token_id: int, varlen_attention: bool = False
               ) -> tuple[dict[str, Any], list[list[int]]]:
    """One batch's sequences (`input_ids`, `labels`) packed without padding, and which went in each row.

    With varlen attention the whole batch is one row and the cost is Σ lengthᵢ². Otherwise rows hold
    at most the batch's longest sequence, so the tensor has no more rows (and no longer rows) than
    padding would give, and each row's attention mask (built by transformers) is no larger.
    """
    lengths = [len(row["input_ids"]) for row in rows]
    groups = pack_indices(lengths, sum(lengths) if varlen_attention else max(lengths))
    return packed_batch(assemble_rows(rows, groups), pad_token_id), groups


def pack_sequences(rows: list[tuple[list[int], list[int]]], pad_token_id: int, varlen_attention: bool = False
                   ) -> dict[str, Any]:
    """(ids, labels) sequences packed padding-free (`pack_batch`), plus `sequence_index` [rows, T] naming
    each token's sequence (-1 on padding), from which the trainers read per-sequence values back."""
    import torch

    if any(len(ids) != len(labels) or not ids for ids, labels in rows):
        raise ValueError("every sequence needs as many labels as tokens, and at least one token")
    lengths = [len(ids) for ids, _ in rows]
    batch, groups = pack_batch([{"input_ids": ids, "labels": labels} for ids, labels in rows], pad_token_id,
                               varlen_attention)
    sequence_index = torch.full(batch["input_ids"].shape, -1, dtype=torch.long)
    for row, members in enumerate(groups):
        start = 0
        for index in members:
            sequence_index[row, start : start + lengths[index]] = index
            start += lengths[index]
    batch[SEQUENCE_INDEX_KEY] = sequence_index
    return batch


def uses_varlen_attention(model: Any) -> bool:
    """Whether the model's attention takes packed rows from position ids alone (no mask needed)."""
    return getattr(model.config, "_attn_implementation", "") in ("flash_attention_2", "flash_attention_3")
