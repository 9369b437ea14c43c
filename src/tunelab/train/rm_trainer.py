"""`stage: rm`: a reward model = the causal LM (LoRA, freeze or full) + a scalar value head.

The head hangs on the trained model as `v_head`, so the Trainer optimises, clips, checkpoints and
moves it like any other parameter. On save it is taken off for the LM's own `save_pretrained` (a
plain adapter or model folder) and written next to it as `value_head.safetensors`, which is how
`tunelab score`, the API's `/v1/score/evaluation`, export and PPO find it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from tunelab.model.value_head import (
    ATTRIBUTE,
    PREFIX,
    VALUE_HEAD_FILE,
    attach_value_head,
    detach_value_head,
    load_value_head,
    save_value_head,
    sequence_rewards,
)
from tunelab.train.losses import pairwise_reward_loss
from tunelab.train.pref_trainer import MetricsTrainer

logger = logging.getLogger("tunelab.train")


class RewardTrainer(MetricsTrainer):
    """Pairwise reward modelling: −log σ(r_chosen − r_rejected); logs accuracy (chosen scored higher)."""

    def __init__(self, *args: Any, model: Any = None, **kwargs: Any) -> None:
        attach_value_head(model)  # before the Trainer builds its optimizer from the model's parameters
        super().__init__(*args, model=model, **kwargs)

    @property
    def value_head(self) -> Any:
        return getattr(self.model, ATTRIBUTE)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        rewards = sequence_rewards(model, self.value_head, inputs)  # chosen rows, then rejected rows
        half = rewards.shape[0] // 2
        chosen, rejected = rewards[:half], rewards[half:]
        loss = pairwise_reward_loss(chosen, rejected).mean()
        self.record(model, {
            "accuracy": (chosen > rejected).float(), "rewards/chosen": chosen, "rewards/rejected": rejected,
            "rewards/margins": chosen - rejected,
        })
        return (loss, {"chosen_rewards": chosen, "rejected_rewards": rejected}) if return_outputs else loss

    @contextlib.contextmanager
    def _without_head(self) -> Iterator[Any]:
        head = detach_value_head(self.model)
        try:
            yield head
        finally:
            if head is not None:
                attach_value_head(self.model, head)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The LM as usual (adapter or model folder), the head as `value_head.safetensors` beside it."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if state_dict is not None:  # DeepSpeed / FSDP gathered state: the head's keys leave it
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(PREFIX)}
        with self._without_head() as head:
            super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save and head is not None:
            path = save_value_head(head, output_dir)
            logger.info("value head saved to %s", path)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        with self._without_head() as head:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, VALUE_HEAD_FILE)
        if head is not None and os.path.isfile(path):
            with torch.no_grad():
                head.load_state_dict(load_value_head(path).state_dict())
            logger.info("value head restored from %s", path)
