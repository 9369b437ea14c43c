"""The collators more than one stage uses: pairs (rm, dpo) and prompts (ppo, grpo).

Pairs: the chosen sequences then the rejected sequences of a batch go through the model in ONE
forward pass (sequences [0, B) are chosen, [B, 2B) rejected), in one of two layouts with the same
sequences in the same order:

- padded (`padding_free: false`): one row per sequence, right-padded to the longest;
- padding-free (the default): the sequences packed into rows (`data/batching.pack_sequences`) with
  per-sequence position ids, a block-diagonal causal mask, the first label of each sequence ignored,
  and `sequence_index` naming each token's sequence. The trainers read per-sequence values through
  `losses/logprobs.sequence_token_logps` / `last_token_states`, which give the padded layout back, so
  the losses are the same code for both.

Prompts: left-padded, so generation continues every row at the same column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.config.resolved import Config
from tunelab.data.batching import TOKEN_COUNT_KEY, pack_sequences, pad_left, pad_right, uses_varlen_attention
from tunelab.model.packing_isolation import packing_isolation

REF_KEYS = ("ref_chosen_logps", "ref_rejected_logps", "ref_logps", "ref_kl_logps")


def add_reference_values(features: list[dict[str, Any]], batch: dict[str, Any]) -> None:
    """Precomputed reference log-probs travel with their rows (see `precompute_ref_log_probs`)."""
    import torch

    for key in REF_KEYS:
        if key in features[0]:
            batch[key] = torch.tensor([float(f[key]) for f in features], dtype=torch.float32)


def pair_layout(tokenizer: Any, model: Any, config: Config | None) -> dict[str, Any]:
    """The batch layout keys of the pair and kto collators: padding-free unless `padding_free: false`, or
    unless the model would let packed sequences see each other (`model/packing_isolation.py`: padded then)."""
    padding_free = bool(config is not None and config.data.padding_free) and packing_isolation(model).isolates
    return {"pad_token_id": tokenizer.pad_token_id, "padding_free": padding_free,
            "varlen_attention": padding_free and uses_varlen_attention(model)}


@dataclass
class PairCollator:
    """Chosen sequences, then rejected ones, in one batch: one forward pass scores both sides.

    `padding_free`: packed rows with `sequence_index` (see the module docstring); else padded rows.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    padding_free: bool = False
    varlen_attention: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [(list(f[f"{side}_input_ids"]), list(f[f"{side}_labels"])) for side in ("chosen", "rejected")
                for f in features]
        if self.padding_free:
            batch = pack_sequences(rows, self.pad_token_id, self.varlen_attention)
        else:
            batch = pad_right(rows, self.pad_token_id, self.pad_to_multiple_of)
            batch[TOKEN_COUNT_KEY] = batch["attention_mask"].sum()
        add_reference_values(features, batch)
        return batch


@dataclass
class PromptCollator:
    """Rows `{input_ids, labels}` (prompt ending with the generation header, reference answer ids)
    → `input_ids` / `attention_mask` left-padded to the longest prompt, and `answer_ids` (lists)."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        ids, mask = pad_left([list(row["input_ids"]) for row in rows], self.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask,
                "answer_ids": [list(row.get("labels") or []) for row in rows]}


def prompt_collator(tokenizer: Any) -> PromptCollator:
    """Prompts padded with the pad token, or eos where the tokenizer has none (ppo, grpo)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return PromptCollator(pad_token_id=int(pad))
