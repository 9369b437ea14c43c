"""Selecting and mixing examples: `num_samples`, `max_samples`, `mix_strategy`, `val_size`.

The interleaving and the validation split are delegated to `datasets` on index tables, so the order
and the split are exactly those of `datasets.interleave_datasets` / `Dataset.train_test_split` with
the same seed, as in the anchor, while the examples themselves stay plain Python objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.data")

T = TypeVar("T")

STOPPING = {
    "interleave_under": "first_exhausted",
    "interleave_over": "all_exhausted",
    "interleave_once": "all_exhausted_without_replacement",
}
MIX_STRATEGIES = ("concat", *STOPPING)


def take_samples(items: Sequence[T], num_samples: int, seed: int) -> list[T]:
    """The registry's `num_samples`: a random subset, or every item plus random repeats when it asks for more."""
    rng = np.random.default_rng(seed)
    indexes = list(rng.permutation(len(items))[:num_samples])
    if num_samples > len(items):
        indexes += list(rng.choice(len(items), num_samples - len(items)))
    return [items[int(i)] for i in indexes]


def take_first(items: Sequence[T], max_samples: int | None) -> list[T]:
    """`max_samples`: the first N items of one data set, as the anchor does."""
    return list(items if max_samples is None else items[:max_samples])


def mix(
    parts: Sequence[Sequence[T]], strategy: str = "concat", probs: list[float] | None = None, seed: int = 42
) -> list[T]:
    """Combine several data sets into one list with the anchor's `mix_strategy`."""
    if strategy not in MIX_STRATEGIES:
        raise UserError(f"mix_strategy must be one of {', '.join(MIX_STRATEGIES)}, got '{strategy}'")
    if probs is not None and len(probs) != len(parts):
        raise UserError(f"interleave_probs has {len(probs)} values for {len(parts)} data sets")
    if len(parts) == 1:
        return list(parts[0])
    if strategy == "concat":
        return [item for part in parts for item in part]
    if probs is not None and abs(sum(probs) - 1.0) > 1e-6:
        raise UserError(f"interleave_probs must sum to 1, they sum to {sum(probs):g}")
    non_empty = [i for i, part in enumerate(parts) if part]
    if len(non_empty) < len(parts):
        raise UserError("cannot interleave an empty data set; remove it or use mix_strategy: concat")

    from datasets import Dataset, interleave_datasets

    tables = [Dataset.from_dict({"part": [i] * len(part), "index": list(range(len(part)))}) for i, part in enumerate(parts)]
    mixed = interleave_datasets(tables, probabilities=probs, seed=seed, stopping_strategy=STOPPING[strategy])
    return [parts[p][i] for p, i in zip(mixed["part"], mixed["index"])]


def val_count(val_size: float, total: int) -> int:
    """How many examples `val_size` takes: a fraction of `total` in (0, 1), or a count when >= 1."""
    if val_size < 0:
        raise UserError(f"val_size must be >= 0, got {val_size}")
    if val_size >= 1:
        if int(val_size) != val_size:
            raise UserError(f"val_size >= 1 is a number of examples and must be whole, got {val_size}")
        count = int(val_size)
    else:
        count = int(np.ceil(val_size * total))
    if count >= total:
        raise UserError(f"val_size {val_size:g} takes {count} of {total} examples and leaves none to train on")
    return count


def split_validation(items: Sequence[T], val_size: float, seed: int) -> tuple[list[T], list[T]]:
    """Split off a validation set exactly as `Dataset.train_test_split(test_size=val_size, seed=seed)` does."""
    if not val_size:
        return list(items), []
    count = val_count(val_size, len(items))
    from datasets import Dataset

    table = Dataset.from_dict({"index": list(range(len(items)))})
    split = table.train_test_split(test_size=count, seed=seed)
    return [items[i] for i in split["train"]["index"]], [items[i] for i in split["test"]["index"]]
