"""Packs encoded examples into rows of at most `cutoff_len` tokens, keeping each example's boundaries.

Each packed row records the length of every example in it (`segment_lengths`); the collator turns
those into per-example position ids and an attention mask that never crosses examples, so a packed
batch computes exactly what the unpacked examples would, without spending compute on padding.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

IGNORE_INDEX = -100


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
