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
gradient_accumulation_steps × processes × ppo_buffer_size` prompts, and the sampler hands each chunk
over `ppo_epochs` times in a row. The first time a prompt batch arrives its rollout is made and kept;
the later passes reuse it (π_old, values, advantages fixed), so each rollout gets `ppo_epochs ×
ppo_buffer_size` optimiser steps, the anchor's schedule. `max_steps` counts optimiser steps.

The rollouts of one optimiser step are made together before its first micro-batch, and what is a
statistic of the batch (score normalisation, reward and advantage whitening, the KL the controller
adapts to) is taken over the whole step, every process included; completions are sampled with one
seed per prompt (`rl/seeded_sampling.py`); the losses are token means over the step (`MetricsTrainer`).
So accumulation and processes change nothing but speed. Checkpoints keep each process's rollouts,
so a run resumed between two passes over a rollout reuses it.
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
from tunelab.train.rl.seeded_sampling import PromptSeeds, seeded_sample
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
ROLLOUTS_FILE = "ppo_rollouts_{rank}.pt"  # in checkpoints: the rollouts each process keeps for its next ppo_epochs


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
    passes: int = 0  # optimizer steps that have used it; after ppo_epochs a new rollout replaces it


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
        self.prompt_seeds = PromptSeeds(self.args.seed)
        logger.info("ppo: %d prompts per rollout, %d optimiser steps per rollout (ppo_epochs %d × ppo_buffer_size %d)",
                    self.args.per_device_train_batch_size * self.rollouts_kept, ft.ppo_epochs * ft.ppo_buffer_size,
                    ft.ppo_epochs, ft.ppo_buffer_size)

    @property
    def value_head(self) -> Any:
        return getattr(self.model, ATTRIBUTE)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        ft = self.config.finetuning
        chunk = self.args.per_device_train_batch_size * self.rollouts_kept * self.args.world_size  # every process's share
        return RepeatedChunkSampler(len(dataset), chunk, ft.ppo_epochs, self.args.seed,
                                    shuffle=not ft.disable_shuffling)

    # -- rollout ------------------------------------------------------------------------------------
    #
    # The rollouts of an optimizer step are made together, before its first micro-batch (`prepare_step`):
    # score normalisation, reward / advantage whitening and the adaptive KL coefficient use the whole
    # step's completions (every micro-batch, every process), and completions are sampled with one seed per
    # prompt (`rl/seeded_sampling.py`), so the step does not depend on how it is split or spread.

    def _sample(self, model: Any, inputs: dict[str, Any]) -> Rollout:
        if not self.generation_config.do_sample:
            return sample(model, inputs["input_ids"], inputs["attention_mask"], self.generation_config,
                          self.stop_ids, self.pad_token_id)
        seeds = self.prompt_seeds(self.state.global_step, "train" if model.training else "eval", inputs["input_ids"],
                                  inputs["attention_mask"], 1)
        return seeded_sample(model, inputs["input_ids"], inputs["attention_mask"], self.generation_config,
                             self.stop_ids, self.pad_token_id, seeds)

    @torch.no_grad()
    def make_rollouts(self, model: Any, batches: list[dict[str, Any]], across_processes: bool) -> list[PPOBatch]:
        """Rollouts of prompt batches, with the statistics of all of them together (and of every process when
        `across_processes`; then every process must call this at the same time, with its own batches)."""
        ft = self.config.finetuning
        training = model.training
        reduce = None
        if across_processes and self.accelerator.num_processes > 1:
            def reduce(t: torch.Tensor) -> torch.Tensor:
                return self.accelerator.reduce(t, reduction="sum")
        parts = []
        for inputs in batches:
            rollout = self._sample(model, inputs)
            mask = rollout.completion_mask
            old_logps, hidden = completion_logps(model, rollout)
            old_values = self.value_head(hidden[:, rollout.prompt_length - 1 : -1]) * mask
            with self.reference() as ref:
                ref_logps, _ = completion_logps(ref, rollout)
            raw = self.scorer.score_rollout(rollout).float().to(rollout.sequences.device)
            parts.append((rollout, old_logps, old_values, ref_logps, raw))
        if training:
            tokens = sum((int(part[0].attention_mask.sum()) for part in parts), 0)
            if reduce is not None:
                self.add_tokens_seen(tokens)  # every process, together
            else:
                self.state.num_input_tokens_seen += tokens
        raws = [part[4] for part in parts]
        scores = raws
        if ft.ppo_score_norm:
            if training:  # the running moments take in the whole step's scores at once
                every = [float(v) for raw in raws for v in raw.cpu()]
                if reduce is not None:
                    from accelerate.utils import gather_object

                    every = gather_object(every)
                self.score_moments.update(torch.tensor(every, dtype=torch.float32))
            mean, std = self.score_moments.mean, max(self.score_moments.var, 0.0) ** 0.5
            scores = [(raw - mean) / (std + 1e-8) for raw in raws]
        beta = self.kl_ctl.value  # the same coefficient for every rollout of the step
        masks = [part[0].completion_mask for part in parts]
        rewards, kls = [], []
        for (rollout, old_logps, _, ref_logps, _), score in zip(parts, scores, strict=True):
            reward, kl = R.kl_penalised_rewards(score, old_logps, ref_logps, rollout.completion_mask, beta)
            rewards.append(reward)
            kls.append(kl.sum(-1))
        if ft.ppo_whiten_rewards:
            rewards = R.whiten_many(rewards, masks, shift_mean=False, all_reduce=reduce, device=self.args.device)
        estimates = [R.gae(reward, part[2], part[0].completion_mask, gamma=GAMMA, lam=LAMBDA)
                     for reward, part in zip(rewards, parts, strict=True)]
        advantages = R.whiten_many([a for a, _ in estimates], masks, all_reduce=reduce, device=self.args.device)
        kl_stats = torch.stack((sum((k.double().sum() for k in kls), torch.zeros((), dtype=torch.float64,
                                                                                  device=self.args.device)),
                                torch.tensor(float(sum(k.numel() for k in kls)), dtype=torch.float64,
                                             device=self.args.device)))
        if reduce is not None:
            kl_stats = reduce(kl_stats)
        if training:
            self.kl_ctl.update(float(kl_stats[0] / kl_stats[1].clamp(min=1)), n_steps=int(kl_stats[1]))
        self.record(model, {"reward": torch.cat(raws) if raws else None, "kl": torch.cat(kls) if kls else None,
                            "kl_coef": beta, "response_length": torch.cat([p[0].lengths() for p in parts]) if parts else None,
                            "reward_normalised": torch.cat(scores) if ft.ppo_score_norm and scores else None})
        return [PPOBatch(part[0], part[1], part[2], advantage, returns)
                for part, advantage, (_, returns) in zip(parts, advantages, estimates, strict=True)]

    @staticmethod
    def _key(inputs: dict[str, Any]) -> bytes:
        ids = inputs["input_ids"]
        return bytes(str(tuple(ids.shape)), "ascii") + ids.cpu().numpy().tobytes()

    def prepare_step(self, batches: list[dict[str, Any]]) -> None:
        """The rollouts of this step's prompt batches that are not kept from an earlier ppo_epoch, made together."""
        epochs = self.config.finetuning.ppo_epochs
        missing = [batch for batch in batches
                   if self._key(batch) not in self.rollouts or self.rollouts[self._key(batch)].passes >= epochs]
        wanted = len(missing)
        if self.accelerator.num_processes > 1:  # all make them, or none: the statistics are shared
            wanted = int(self.accelerator.reduce(torch.tensor([len(missing)], device=self.args.device), "sum")[0])
        if wanted:
            for batch, made in zip(missing, self.make_rollouts(self.model, missing, across_processes=True), strict=True):
                self.rollouts.pop(self._key(batch), None)
                self.rollouts[self._key(batch)] = made
            while len(self.rollouts) > max(self.rollouts_kept, len(batches)):
                self.rollouts.popitem(last=False)
        for batch in batches:
            self.rollouts[self._key(batch)].passes += 1

    def step_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": self.rollouts[self._key(batch)].rollout.completion_mask.sum()}  # the losses average tokens

    def _rollout_for(self, model: Any, inputs: dict[str, Any]) -> PPOBatch:
        key = self._key(inputs)
        if model.training and key in self.rollouts:
            return self.rollouts[key]
        batch = self.make_rollouts(model, [inputs], across_processes=False)[0]  # evaluation: this batch alone
        if model.training:
            self.rollouts[key] = batch
        return batch

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        batch = self._rollout_for(model, inputs)
        rollout, mask = batch.rollout, batch.rollout.completion_mask
        logps, hidden = completion_logps(model, rollout)
        values = self.value_head(hidden[:, rollout.prompt_length - 1 : -1])
        policy_loss, policy_clip = R.clipped_policy_loss(logps, batch.old_logps, batch.advantages, mask, CLIP_RANGE,
                                                         reduction="sum")
        value_loss, value_clip = R.clipped_value_loss(values, batch.old_values, batch.returns, mask, CLIP_RANGE_VALUE,
                                                      reduction="sum")
        tokens = mask.sum()
        loss = self.step_share(policy_loss + VALUE_COEF * value_loss, "tokens", num_items_in_batch, tokens)
        self.record(model, {"policy_loss": policy_loss.detach() / tokens.clamp(min=1),
                            "value_loss": value_loss.detach() / tokens.clamp(min=1), "clip_fraction": policy_clip,
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
        kept = checkpoint / ROLLOUTS_FILE.format(rank=self.args.process_index)
        if kept.is_file():  # a checkpoint taken between the ppo_epochs passes over a rollout: its later passes
            saved = torch.load(kept, map_location=self.args.device, weights_only=True)
            self.rollouts = OrderedDict((bytes.fromhex(key), _batch_from_state(value)) for key, value in saved)

    def _save_rng_state(self, output_dir: str) -> None:
        """Every process writes its RNG state into each checkpoint here; the rollouts it keeps go beside it,
        so a run resumed between the ppo_epochs passes over a rollout reuses that rollout, as it would have."""
        super()._save_rng_state(output_dir)
        state = [(key.hex(), _batch_state(batch)) for key, batch in self.rollouts.items()]
        torch.save(state, Path(output_dir) / ROLLOUTS_FILE.format(rank=self.args.process_index))


def _batch_state(batch: PPOBatch) -> dict[str, Any]:
    rollout = batch.rollout
    return {"sequences": rollout.sequences, "attention_mask": rollout.attention_mask,
            "prompt_length": rollout.prompt_length, "completion_mask": rollout.completion_mask,
            "old_logps": batch.old_logps, "old_values": batch.old_values, "advantages": batch.advantages,
            "returns": batch.returns, "passes": batch.passes}


def _batch_from_state(state: dict[str, Any]) -> PPOBatch:
    rollout = Rollout(state["sequences"], state["attention_mask"], int(state["prompt_length"]), state["completion_mask"])
    return PPOBatch(rollout, state["old_logps"], state["old_values"], state["advantages"], state["returns"],
                    int(state["passes"]))


Trainer = PPOTrainer
