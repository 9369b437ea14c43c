"""Batches of prompts for online RL (ppo, grpo): left-padded, so generation continues every row at the same column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class PromptCollator:
    """Rows `{input_ids, labels}` (prompt ending with the generation header, reference answer ids)
    → `input_ids` / `attention_mask` left-padded to the longest prompt, and `answer_ids` (lists)."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(row["input_ids"]) for row in rows)
        ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            prompt = list(row["input_ids"])
            if prompt:
                ids[i, longest - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
                mask[i, longest - len(prompt):] = 1
        return {"input_ids": ids, "attention_mask": mask,
                "answer_ids": [list(row.get("labels") or []) for row in rows]}


def prompt_collator(prepared: Any, tokenizer: Any, model: Any, config: Any) -> PromptCollator:
    """The stage registry's collator factory for ppo and grpo."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return PromptCollator(pad_token_id=int(pad))
