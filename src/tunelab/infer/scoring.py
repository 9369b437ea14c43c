"""Reward-model scoring (`/v1/score/evaluation`): one scalar per text, read at its last token.

Two on-disk shapes of a reward model are understood: the standard transformers one
(`AutoModelForSequenceClassification` with one label, what trl and most published reward models
save), and the anchor's (a causal LM, maybe with a LoRA adapter, plus `value_head.safetensors`
holding `v_head.summary.weight` / `.bias`, read by `tunelab.model.value_head`), so reward models
trained with LLaMA-Factory or with `tunelab train stage: rm` both load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("tunelab.infer")


class RewardScorer:
    """Scores texts with a reward model: `score(["...", ...]) -> [float, ...]`."""

    def __init__(self, model: Any, tokenizer: Any, value_head: Any = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.value_head = value_head  # None: `model` is a sequence-classification model

    @classmethod
    def from_value_head(cls, model: Any, tokenizer: Any, path: Path) -> RewardScorer:
        import torch

        from tunelab.model.value_head import load_value_head

        head = load_value_head(path)
        logger.info("reward model: value head from %s", path)
        return cls(model, tokenizer, head.to(device=model.device, dtype=torch.float32))

    def score(self, texts: Sequence[str], max_length: int | None = None) -> list[float]:
        import torch

        scores = []
        with torch.inference_mode():
            for text in texts:
                ids = self.tokenizer(text, add_special_tokens=True, truncation=max_length is not None,
                                     max_length=max_length, return_tensors="pt")["input_ids"].to(self.model.device)
                if self.value_head is None:
                    scores.append(float(self.model(input_ids=ids).logits[0, 0]))  # one label: the reward
                    continue
                hidden = self.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1]
                scores.append(float(self.value_head(hidden.float()).reshape(-1)[0]))
        return scores
