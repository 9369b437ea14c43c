"""`stage: rm`: a reward model = the causal LM (LoRA, freeze or full) + a scalar value head.

The head hangs on the trained model as `v_head`, so the Trainer optimises, clips, checkpoints and
moves it like any other parameter. On save it is taken off for the LM's own `save_pretrained` (a
plain adapter or model folder) and written next to it as `value_head.safetensors`, which is how
`tunelab score`, the API's `/v1/score/evaluation`, export and PPO find it again.
"""

from __future__ import annotations

import logging
from typing import Any

from tunelab.config.resolved import Config
from tunelab.model.value_head import (
    ATTRIBUTE,
    attach_value_head,
    sequence_rewards,
)
from tunelab.train.collators import PairCollator, pair_layout
from tunelab.train.data_prep import PreparedData
from tunelab.train.losses.logprobs import (
    forward_hidden,
    is_padding_free,
    last_token_states,
)
from tunelab.train.losses.preference import pairwise_reward_loss
from tunelab.train.run.value_head_state import ValueHeadCheckpointMixin
from tunelab.train.trainers.metrics import MetricsTrainer, sequence_count

logger = logging.getLogger("tunelab.train")

NAMES = ("rm",)  # the stage-table rows this room serves


def check_config(config: Config) -> None:
    """rm has no keys of its own to check beyond what config/validate.py checks."""


def make_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config) -> PairCollator:
    """Chosen then rejected sequences in one batch, padding-free unless `padding_free: false`."""
    return PairCollator(**pair_layout(tokenizer, model, config))


def pair_rewards(model: Any, head: Any, batch: dict[str, Any]) -> Any:
    """One reward per sequence (chosen ones, then rejected ones): the head at each sequence's last token,
    for a padded batch (one row per sequence) or a padding-free one (packed rows + `sequence_index`)."""
    if not is_padding_free(batch):
        return sequence_rewards(model, head, batch)
    return head(last_token_states(forward_hidden(model, batch), batch))


class RewardTrainer(ValueHeadCheckpointMixin, MetricsTrainer):
    """Pairwise reward modelling: −log σ(r_chosen − r_rejected); logs accuracy (chosen scored higher)."""

    def __init__(self, *args: Any, model: Any = None, **kwargs: Any) -> None:
        attach_value_head(model)  # before the Trainer builds its optimizer from the model's parameters
        super().__init__(*args, model=model, **kwargs)

    @property
    def value_head(self) -> Any:
        return getattr(self.model, ATTRIBUTE)

    def step_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"pairs": sequence_count(batch) // 2}  # the loss is a mean over pairs

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        rewards = pair_rewards(model, self.value_head, inputs)  # chosen sequences, then rejected ones
        half = rewards.shape[0] // 2
        chosen, rejected = rewards[:half], rewards[half:]
        loss = self.step_share(pairwise_reward_loss(chosen, rejected).sum(), "pairs", num_items_in_batch, half)
        self.record(model, {
            "accuracy": (chosen > rejected).float(), "rewards/chosen": chosen, "rewards/rejected": rejected,
            "rewards/margins": chosen - rejected,
        })
        return (loss, {"chosen_rewards": chosen, "rejected_rewards": rejected}) if return_outputs else loss


Trainer = RewardTrainer
