"""`stage: ppo`: PPO (Schulman et al. 2017) against a reward model trained by `stage: rm`, RLHF style.

The policy (LoRA, freeze or full) carries a value head (`v_head`, the same `ValueHead` as rm, on
the policy's last hidden state, so with LoRA it shares the adapter as the anchor's does). For a
prompt batch: completions are sampled with the generating arguments; the reward model scores each
whole response as the finished turn stage rm trained it on (`RewardModelScorer.score_rollout`);
per-token rewards are −β·KL(π‖π_ref) with the score added on the last token (Ziegler et al.
2019), β adapted towards `ppo_target` by the adaptive controller; GAE (γ = 1, λ = 0.95) gives
advantages (whitened) and returns; the clipped policy loss plus 0.1 × the clipped value loss is
minimised.

Steps inside `transformers.Trainer`: a rollout is a chunk of `per_device_train_batch_size ×
gradient_accumulation_steps × ppo_buffer_size` prompts, and the sampler hands each chunk over
`ppo_epochs` times in a row. The first time a prompt batch arrives its rollout is made and kept;
the later passes reuse it (π_old, values, advantages fixed), so each rollout gets `ppo_epochs ×
ppo_buffer_size` optimiser steps, the anchor's schedule. `max_steps` counts optimiser steps.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from tunelab.config.resolved import Config
from tunelab.errors import UserError
from tunelab.model.value_head import (
    ATTRIBUTE,
    attach_value_head,
    detach_value_head,
)
from tunelab.train.collators import PromptCollator, prompt_collator
from tunelab.train.data_prep import PreparedData
from tunelab.train.losses import rl as R
from tunelab.train.rl.checks import check_rl_common
from tunelab.train.rl.rollout import (
    RewardModelScorer,
    Rollout,
    RunningMoments,
    completion_logps,
    generation_config,
    sample,
)
from tunelab.train.run.value_head_state import ValueHeadCheckpointMixin
from tunelab.train.trainers.reference import ReferenceTrainer

logger = logging.getLogger("tunelab.train")

NAMES = ("ppo",)  # the stage-table rows this room serves


def make_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config) -> PromptCollator:
    """Prompts, left-padded so generation continues every row at the same column."""
    return prompt_collator(tokenizer)

CLIP_RANGE = 0.2  # ε of the policy ratio (PPO paper; trl and the anchor)
CLIP_RANGE_VALUE = 0.2
VALUE_COEF = 0.1  # weight of the value loss (trl's vf_coef)
INIT_KL_COEF = 0.2  # initial β of the adaptive controller (Ziegler et al.; trl)
KL_HORIZON = 10000
GAMMA, LAMBDA = 1.0, 0.95
STATE_FILE = "ppo_state.json"


def check_config(config: Config) -> None:
    """PPO's own refusals (exit code 2), before any weights load."""
    ft = config.finetuning
    check_rl_common(config)
    if not ft.reward_model:
        raise UserError("stage: ppo needs reward_model: the output folder of a stage: rm run (reward_model_type: "
                        "lora for an rm adapter, full for a model folder, api for a scoring server URL).")
    if ft.ppo_epochs < 1:
        raise UserError(f"ppo_epochs must be at least 1 (got {ft.ppo_epochs}).")
    if ft.ppo_buffer_size < 1:
        raise UserError(f"ppo_buffer_size must be at least 1 (got {ft.ppo_buffer_size}).")
    if ft.ppo_target is not None and ft.ppo_target <= 0:
        raise UserError(f"ppo_target must be > 0 (got {ft.ppo_target}).")


class RepeatedChunkSampler(Sampler[int]):
    """Shuffled indices in chunks of `chunk`; every chunk is yielded `repeats` times in a row (ppo_epochs)."""

    def __init__(self, size: int, chunk: int, repeats: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.chunk, self.repeats, self.seed, self.shuffle = size, chunk, repeats, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.size))
        for start in range(0, self.size, self.chunk):
            part = order[start : start + self.chunk]
            for _ in range(self.repeats):
                yield from part

    def __len__(self) -> int:
        return self.size * self.repeats


@dataclass
class PPOBatch:
    """A rollout with what its updates need, all fixed while it is reused (π_old, V_old, advantages)."""

    rollout: Rollout
    old_logps: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOTrainer(ValueHeadCheckpointMixin, ReferenceTrainer):
    """PPO with a value head, a reward model, the KL-penalised reward and GAE."""

    def __init__(self, *args: Any, model: Any = None, **kwargs: Any) -> None:
        config = kwargs["config"]
        check_config(config)
        attach_value_head(model)  # before the Trainer builds its optimizer (and before a frozen reference copy)
        super().__init__(*args, model=model, **kwargs)
        from tunelab.data.encode import stop_token_ids
        from tunelab.data.templates import get_template

        ft, tokenizer = config.finetuning, self.processing_class
        if self.ref_model is not None:
            detach_value_head(self.ref_model)  # the reference is a policy only
        self.scorer = RewardModelScorer(config, tokenizer, self.args.device)
        template = get_template(config.data.template, tokenizer, tool_format=config.data.tool_format,
                                default_system=config.data.default_system)
        self.stop_ids = stop_token_ids(tokenizer, template)
        self.generation_config = generation_config(config, tokenizer, self.stop_ids)
        self.pad_token_id = int(self.generation_config.pad_token_id)
        self.kl_ctl = R.AdaptiveKLController(INIT_KL_COEF, ft.ppo_target, KL_HORIZON)
        self.score_moments = RunningMoments()
        self.rollouts: OrderedDict[bytes, PPOBatch] = OrderedDict()
        self.rollouts_kept = self.args.gradient_accumulation_steps * ft.ppo_buffer_size
        logger.info("ppo: %d prompts per rollout, %d optimiser steps per rollout (ppo_epochs %d × ppo_buffer_size %d)",
                    self.args.per_device_train_batch_size * self.rollouts_kept, ft.ppo_epochs * ft.ppo_buffer_size,
                    ft.ppo_epochs, ft.ppo_buffer_size)

    @property
    def value_head(self) -> Any:
        return getattr(self.model, ATTRIBUTE)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        ft = self.config.finetuning
        chunk = self.args.per_device_train_batch_size * self.rollouts_kept
        return RepeatedChunkSampler(len(dataset), chunk, ft.ppo_epochs, self.args.seed,
                                    shuffle=not ft.disable_shuffling)

    # -- rollout ------------------------------------------------------------------------------------

    def _scores(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.scorer.score_rollout(rollout).float().to(rollout.sequences.device)
        scores = raw
        if self.config.finetuning.ppo_score_norm:
            mean, std = self.score_moments.update(raw)
            scores = (raw - mean) / (std + 1e-8)
        return raw, scores

    @torch.no_grad()
    def make_rollout(self, model: Any, inputs: dict[str, Any]) -> PPOBatch:
        ft = self.config.finetuning
        rollout = sample(model, inputs["input_ids"], inputs["attention_mask"], self.generation_config, self.stop_ids,
                         self.pad_token_id)
        mask = rollout.completion_mask
        old_logps, hidden = completion_logps(model, rollout)
        old_values = self.value_head(hidden[:, rollout.prompt_length - 1 : -1]) * mask
        with self.reference() as ref:
            ref_logps, _ = completion_logps(ref, rollout)
        raw, scores = self._scores(rollout)
        rewards, kl = R.kl_penalised_rewards(scores, old_logps, ref_logps, mask, self.kl_ctl.value)
        if ft.ppo_whiten_rewards:
            rewards = R.whiten(rewards, mask, shift_mean=False)
        advantages, returns = R.gae(rewards, old_values, mask, gamma=GAMMA, lam=LAMBDA)
        advantages = R.whiten(advantages, mask)
        kl_per_sequence = kl.sum(-1).mean()
        beta = self.kl_ctl.value
        if model.training:
            self.kl_ctl.update(float(kl_per_sequence), n_steps=int(mask.shape[0]))
            self.state.num_input_tokens_seen += int(rollout.attention_mask.sum())
        self.record(model, {"reward": raw.mean(), "kl": kl_per_sequence, "kl_coef": beta,
                            "response_length": rollout.lengths().mean(),
                            "reward_normalised": scores.mean() if ft.ppo_score_norm else None})
        return PPOBatch(rollout, old_logps, old_values, advantages, returns)

    def _rollout_for(self, model: Any, inputs: dict[str, Any]) -> PPOBatch:
        ids = inputs["input_ids"]
        key = bytes(str(tuple(ids.shape)), "ascii") + ids.cpu().numpy().tobytes()
        if model.training and key in self.rollouts:
            return self.rollouts[key]
        batch = self.make_rollout(model, inputs)
        if model.training:
            self.rollouts[key] = batch
            while len(self.rollouts) > self.rollouts_kept:
                self.rollouts.popitem(last=False)
        return batch

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        batch = self._rollout_for(model, inputs)
        rollout, mask = batch.rollout, batch.rollout.completion_mask
        logps, hidden = completion_logps(model, rollout)
        values = self.value_head(hidden[:, rollout.prompt_length - 1 : -1])
        policy_loss, policy_clip = R.clipped_policy_loss(logps, batch.old_logps, batch.advantages, mask, CLIP_RANGE)
        value_loss, value_clip = R.clipped_value_loss(values, batch.old_values, batch.returns, mask, CLIP_RANGE_VALUE)
        loss = policy_loss + VALUE_COEF * value_loss
        self.record(model, {"policy_loss": policy_loss, "value_loss": value_loss, "clip_fraction": policy_clip,
                            "value_clip_fraction": value_clip})
        return (loss, {"values": values}) if return_outputs else loss

    # -- saving: the policy like sft, the value head beside it, the controller state in checkpoints ----

    def _save_extra(self, output_dir: Path) -> None:
        state = {"kl_coef": self.kl_ctl.value, "score_mean": self.score_moments.mean,
                 "score_var": self.score_moments.var, "score_count": self.score_moments.count}
        (output_dir / STATE_FILE).write_text(json.dumps(state))

    def _load_extra(self, checkpoint: Path) -> None:
        if (checkpoint / STATE_FILE).is_file():
            state = json.loads((checkpoint / STATE_FILE).read_text())
            self.kl_ctl.value = float(state["kl_coef"])
            self.score_moments.mean, self.score_moments.var = float(state["score_mean"]), float(state["score_var"])
            self.score_moments.count = int(state["score_count"])


Trainer = PPOTrainer
