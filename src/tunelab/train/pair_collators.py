"""Batches for the pairwise stages (rm, dpo) and for kto.

Pairs: the chosen sequences then the rejected sequences of a batch go through the model in ONE
forward pass (sequences [0, B) are chosen, [B, 2B) rejected). KTO: each example plus its mismatched
KL sequence (the example's prompt with the previous example's response), from which the KTO
reference point is estimated.

Two layouts, the same sequences in the same order:

- padded (`padding_free: false`): one row per sequence, right-padded to the longest;
- padding-free (the default): the sequences packed into rows (`pack_sequences`) — one row with
  varlen attention (flash-attention), otherwise rows no longer than the longest sequence — with
  per-sequence position ids, a block-diagonal causal mask, the first label of each sequence ignored,
  and `sequence_index` [rows, T] naming each token's sequence (-1 on padding). The trainers read
  per-sequence values through `logprobs.sequence_token_logps` / `last_token_states`, which give the
  padded layout back, so the losses are the same code for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.train.collators import IGNORE_INDEX, TOKEN_COUNT_KEY, pack_batch, uses_varlen_attention

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


def pack_sequences(rows: list[tuple[list[int], list[int]]], pad_token_id: int, varlen_attention: bool = False,
                   mask_dtype: Any = None) -> dict[str, Any]:
    """(ids, labels) sequences packed into rows without attention across them, plus `sequence_index`.

    With varlen attention all sequences share one row (no mask: position ids mark the boundaries);
    otherwise rows hold at most the longest sequence (best fit, longest first), so the tensors are
    never larger than the padded batch's and its masks no larger.
    """
    import torch

    from tunelab.train.logprobs import SEQUENCE_INDEX_KEY

    if any(len(ids) != len(labels) or not ids for ids, labels in rows):
        raise ValueError("every sequence needs as many labels as tokens, and at least one token")
    lengths = [len(ids) for ids, _ in rows]
    batch, groups = pack_batch([{"input_ids": ids, "labels": labels} for ids, labels in rows], pad_token_id,
                               varlen_attention, mask_dtype)
    sequence_index = torch.full(batch["input_ids"].shape, -1, dtype=torch.long)
    for row, members in enumerate(groups):
        start = 0
        for index in members:
            sequence_index[row, start : start + lengths[index]] = index
            start += lengths[index]
    batch[SEQUENCE_INDEX_KEY] = sequence_index
    return batch


def _ref_values(features: list[dict[str, Any]], batch: dict[str, Any]) -> None:
    """Precomputed reference log-probs travel with their rows (see `precompute_ref_log_probs`)."""
    import torch

    for key in REF_KEYS:
        if key in features[0]:
            batch[key] = torch.tensor([float(f[key]) for f in features], dtype=torch.float32)


@dataclass
class PairCollator:
    """Chosen sequences, then rejected ones, in one batch: one forward pass scores both sides.

    `padding_free`: packed rows with `sequence_index` (see the module docstring); else padded rows.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    padding_free: bool = False
    varlen_attention: bool = False
    mask_dtype: Any = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [(list(f[f"{side}_input_ids"]), list(f[f"{side}_labels"])) for side in ("chosen", "rejected")
                for f in features]
        if self.padding_free:
            batch = pack_sequences(rows, self.pad_token_id, self.varlen_attention, self.mask_dtype)
        else:
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


KL_PREFIX = "kl_"  # a padding-free kto batch: the KL sequences' own packed rows, under these keys


@dataclass
class KTOCollator:
    """Sequences [0, B) are the examples, [B, 2B) their mismatched KL sequences; `kto_tags` says which are
    desirable.

    Padded: rows [0, B) and [B, 2B) of one padded batch. Padding-free: the examples packed under the
    usual keys and the KL sequences packed apart under `kl_`-prefixed keys (the policy scores the
    examples with gradients and the KL sequences without, so they go through it separately).
    """

    pad_token_id: int
    cutoff_len: int
    pad_to_multiple_of: int | None = None
    padding_free: bool = False
    varlen_attention: bool = False
    mask_dtype: Any = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [(list(f["input_ids"]), list(f["labels"])) for f in features]
        kl_rows = mismatched_rows(features, self.cutoff_len)
        if self.padding_free:
            batch = pack_sequences(rows, self.pad_token_id, self.varlen_attention, self.mask_dtype)
            kl = pack_sequences(kl_rows, self.pad_token_id, self.varlen_attention, self.mask_dtype)
            kl.pop(TOKEN_COUNT_KEY)
            batch.update({KL_PREFIX + key: value for key, value in kl.items()})
            batch["kto_tags"] = torch.tensor([bool(f["kto_tag"]) for f in features], dtype=torch.bool)
            _ref_values(features, batch)
            return batch
        batch = pad_rows(rows + kl_rows, self.pad_token_id, self.pad_to_multiple_of)
        batch["kto_tags"] = torch.tensor([bool(f["kto_tag"]) for f in features], dtype=torch.bool)
        batch[TOKEN_COUNT_KEY] = batch["attention_mask"][: len(features)].sum()
        _ref_values(features, batch)
        return batch


def _layout(tokenizer: Any, model: Any, config: Any) -> dict[str, Any]:
    padding_free = bool(config is not None and config.data.padding_free)
    return {"pad_token_id": tokenizer.pad_token_id, "padding_free": padding_free,
            "varlen_attention": padding_free and uses_varlen_attention(model), "mask_dtype": model.dtype}


def pair_collator(prepared: Any, tokenizer: Any, model: Any, config: Any) -> PairCollator:
    """Collator factory of rm and dpo (the stage registry's signature): padding-free unless `padding_free: false`."""
    return PairCollator(**_layout(tokenizer, model, config))


def kto_collator(prepared: Any, tokenizer: Any, model: Any, config: Any) -> KTOCollator:
    """Collator factory of kto."""
    return KTOCollator(cutoff_len=int(config.data.cutoff_len), **_layout(tokenizer, model, config))
