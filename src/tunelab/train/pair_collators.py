"""Batches for the pairwise stages (rm, dpo) and for kto.

Pairs: the chosen rows then the rejected rows of a batch are stacked along the batch axis and padded
to one length, so both sides go through the model in ONE forward pass (rows [0, B) are chosen,
[B, 2B) rejected). KTO: each example plus its mismatched KL row (the example's prompt with the
previous example's response), from which the KTO reference point is estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.train.collators import IGNORE_INDEX, TOKEN_COUNT_KEY

REF_KEYS = ("ref_chosen_logps", "ref_rejected_logps", "ref_logps", "ref_kl_logps")


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_token_id: int, pad_to_multiple_of: int | None = None
             ) -> dict[str, Any]:
    """Right-padded input_ids / attention_mask / labels from (ids, labels) pairs."""
    import torch

    length = max(len(ids) for ids, _ in rows)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for index, (ids, labs) in enumerate(rows):
        input_ids[index, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[index, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        attention_mask[index, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _ref_values(features: list[dict[str, Any]], batch: dict[str, Any]) -> None:
    """Precomputed reference log-probs travel with their rows (see `precompute_ref_log_probs`)."""
    import torch

    for key in REF_KEYS:
        if key in features[0]:
            batch[key] = torch.tensor([float(f[key]) for f in features], dtype=torch.float32)


@dataclass
class PairCollator:
    """Chosen rows, then rejected rows, padded together: one forward pass scores both sides."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [(list(f[f"{side}_input_ids"]), list(f[f"{side}_labels"])) for side in ("chosen", "rejected")
                for f in features]
        batch = pad_rows(rows, self.pad_token_id, self.pad_to_multiple_of)
        batch[TOKEN_COUNT_KEY] = batch["attention_mask"].sum()
        _ref_values(features, batch)
        return batch


def split_prompt_response(ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """The prompt (everything before the first trained token) and the trained response tokens."""
    start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
    return list(ids[:start]), [label for label in labels[start:] if label != IGNORE_INDEX]


def mismatched_rows(features: list[dict[str, Any]], cutoff_len: int) -> list[tuple[list[int], list[int]]]:
    """KL rows (x_i, y_{i-1}): each prompt with the previous example's response, as in the KTO paper
    (the same responses as the batch, paired with other prompts), cut to `cutoff_len`."""
    parts = [split_prompt_response(list(f["input_ids"]), list(f["labels"])) for f in features]
    rows = []
    for index, (prompt, _) in enumerate(parts):
        response = parts[index - 1][1]  # index 0 takes the last example's response
        ids = (prompt + response)[:cutoff_len]
        rows.append((ids, ([IGNORE_INDEX] * len(prompt) + response)[:cutoff_len]))
    return rows


@dataclass
class KTOCollator:
    """Rows [0, B) are the examples, rows [B, 2B) their mismatched KL rows; `kto_tags` says which are desirable."""

    pad_token_id: int
    cutoff_len: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [(list(f["input_ids"]), list(f["labels"])) for f in features]
        kl_rows = mismatched_rows(features, self.cutoff_len)
        batch = pad_rows(rows + kl_rows, self.pad_token_id, self.pad_to_multiple_of)
        batch["kto_tags"] = torch.tensor([bool(f["kto_tag"]) for f in features], dtype=torch.bool)
        batch[TOKEN_COUNT_KEY] = batch["attention_mask"][: len(features)].sum()
        _ref_values(features, batch)
        return batch


def pair_collator(prepared: Any, tokenizer: Any, model: Any, config: Any) -> PairCollator:
    """Collator factory of rm and dpo (the stage registry's signature)."""
    return PairCollator(pad_token_id=tokenizer.pad_token_id)


def kto_collator(prepared: Any, tokenizer: Any, model: Any, config: Any) -> KTOCollator:
    """Collator factory of kto."""
    return KTOCollator(pad_token_id=tokenizer.pad_token_id, cutoff_len=int(config.data.cutoff_len))
