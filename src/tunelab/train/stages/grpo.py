"""`stage: grpo`: Group Relative Policy Optimisation (Shao et al. 2024, DeepSeekMath) with reward functions.

One Trainer step per prompt batch: every prompt gets `num_generations` sampled completions (a
group), each completion is scored by the reward functions (`reward_funcs`) and/or a reward model
(`reward_model`, trained by `stage: rm`), the scores are normalised inside each group into
advantages, and the clipped objective with a k3 KL penalty to the reference (`grpo_beta`) is
minimised (`losses/rl.grpo_loss`). Completions are sampled once per step and used for one update,
so π_old is the policy of that step (the ratio is 1 in value; its gradient is the policy gradient).

`per_device_train_batch_size` counts prompts; each step sees that many × `num_generations`
completions. Each completion is sampled with its own seed (`rl/seeded_sampling.py`: the run's seed, the step,
the prompt), so how a step's prompts are split into micro-batches or over processes changes no
sample; the loss is the mean over the step's completions (`MetricsTrainer.step_share`), and a group
always lives in one micro-batch, so its advantages are the same too.

The reference is the one dpo uses: the adapter disabled for LoRA, a frozen copy for full / freeze,
or `ref_model`; with `grpo_beta: 0` there is none.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from tunelab.config.resolved import Config
from tunelab.errors import UserError
from tunelab.train.collators import PromptCollator, prompt_collator
from tunelab.train.data_prep import PreparedData
from tunelab.train.losses import rl as R
from tunelab.train.rl.checks import check_rl_common
from tunelab.train.rl.reward_functions import call_reward_function, load_reward_functions, parse_names
from tunelab.train.rl.rollout import (
    RewardModelScorer,
    completion_logps,
    generation_config,
)
from tunelab.train.rl.seeded_sampling import PromptSeeds, seeded_sample
from tunelab.train.trainers.reference import ReferenceTrainer

logger = logging.getLogger("tunelab.train")

NAMES = ("grpo",)  # the stage-table rows this room serves


def make_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config) -> PromptCollator:
    """Prompts, left-padded so generation continues every row at the same column."""
    return prompt_collator(tokenizer)


def check_config(config: Config) -> None:
    """GRPO's own refusals (exit code 2), run before any weights load; reward functions are resolved here."""
    ft = config.finetuning
    check_rl_common(config)
    names = parse_names(ft.reward_funcs)
    if not names and not ft.reward_model:
        raise UserError("stage: grpo needs something to score completions: reward_funcs (e.g. exact_match, "
                        "format:answer, length, module:function) and/or reward_model (a stage: rm output).")
    if ft.num_generations < 2:
        raise UserError(f"num_generations must be at least 2 for stage: grpo (got {ft.num_generations}): advantages "
                        "compare the completions of one prompt with each other.")
    if not config.generating.do_sample:
        raise UserError("stage: grpo needs do_sample: true; greedy decoding gives every completion of a group the "
                        "same text, hence zero advantages.")
    if ft.epsilon <= 0:
        raise UserError(f"epsilon must be > 0 (got {ft.epsilon}).")
    if ft.grpo_beta < 0:
        raise UserError(f"grpo_beta must be >= 0 (got {ft.grpo_beta}).")
    load_reward_functions(ft.reward_funcs)  # every name resolves now, or fails naming it
    reward_weights(config)


def reward_weights(config: Config) -> list[float]:
    """One weight per reward (reward_funcs in order, then reward_model); all 1 unless `reward_weights` says."""
    ft = config.finetuning
    count = len(parse_names(ft.reward_funcs)) + (1 if ft.reward_model else 0)
    if not ft.reward_weights:
        return [1.0] * count
    try:
        weights = [float(w) for w in str(ft.reward_weights).split(",") if w.strip()]
    except ValueError:
        raise UserError(f"reward_weights: {ft.reward_weights!r} is not a comma list of numbers.") from None
    if len(weights) != count:
        raise UserError(f"reward_weights has {len(weights)} values for {count} rewards (reward_funcs, then "
                        "reward_model).")
    return weights


class GRPOTrainer(ReferenceTrainer):
    """GRPO: group sampling, group-normalised advantages, clipped objective + β·KL to the reference."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs["config"]
        check_config(config)
        self.beta = config.finetuning.grpo_beta
        super().__init__(*args, **kwargs)
        from tunelab.data.encode import stop_token_ids
        from tunelab.data.templates import get_template

        ft, tokenizer = config.finetuning, self.processing_class
        self.group_size = ft.num_generations
        self.reward_functions = load_reward_functions(ft.reward_funcs)
        self.reward_names = [getattr(f, "__name__", "reward") for f in self.reward_functions]
        self.weights = reward_weights(config)
        self.reward_model = RewardModelScorer(config, tokenizer, self.args.device) if ft.reward_model else None
        template = get_template(config.data.template, tokenizer, tool_format=config.data.tool_format,
                                default_system=config.data.default_system)
        self.stop_ids = stop_token_ids(tokenizer, template)
        self.generation_config = generation_config(config, tokenizer, self.stop_ids)
        self.pad_token_id = int(self.generation_config.pad_token_id)
        self.prompt_seeds = PromptSeeds(self.args.seed)
        logger.info("grpo: %d completions per prompt, at most %d tokens each; rewards: %s", self.group_size,
                    self.generation_config.max_new_tokens, ", ".join(self.reward_names + (["reward_model"] if
                                                                                           self.reward_model else [])))

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.beta != 0.0

    def step_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"completions": batch["input_ids"].shape[0] * self.group_size}  # the loss averages over completions

    def score(self, rollout: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted sum of every reward per completion ([B·G]); a None from a function counts as 0."""
        tok = self.processing_class
        completions = tok.batch_decode([row[mask.bool()].tolist() for row, mask in
                                        zip(rollout.completions, rollout.completion_mask, strict=True)],
                                       skip_special_tokens=True)
        g = self.group_size
        prompts = [tok.decode(row[mask.bool()].tolist()) for row, mask in
                   zip(inputs["input_ids"], inputs["attention_mask"], strict=True)]
        answers = [tok.decode(ids, skip_special_tokens=True).strip() or None for ids in inputs["answer_ids"]]
        prompts = [p for p in prompts for _ in range(g)]
        answers = [a for a in answers for _ in range(g)]
        columns, means = [], {}
        for name, function in zip(self.reward_names, self.reward_functions, strict=True):
            values = call_reward_function(function, completions=completions, prompts=prompts, answers=answers)
            columns.append(torch.tensor(values, dtype=torch.float32))
            finite = [v for v in values if not math.isnan(v)]
            means[f"rewards/{name}"] = sum(finite) / len(finite) if finite else 0.0
        if self.reward_model is not None:
            scores = self.reward_model.score_rollout(rollout).float().cpu()
            columns.append(scores)
            means["rewards/reward_model"] = float(scores.mean())
        stacked = torch.stack(columns, dim=1)  # [B·G, n_rewards]
        weights = torch.tensor(self.weights, dtype=torch.float32)
        total = torch.nan_to_num(stacked, nan=0.0) @ weights
        return total.to(rollout.sequences.device), means

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        seeds = self.prompt_seeds(self.state.global_step, "train" if model.training else "eval", inputs["input_ids"],
                                  inputs["attention_mask"], self.group_size)
        rollout = seeded_sample(model, inputs["input_ids"], inputs["attention_mask"], self.generation_config,
                                self.stop_ids, self.pad_token_id, seeds)
        rewards, reward_means = self.score(rollout, inputs)
        advantages = R.group_advantages(rewards, self.group_size)
        mask = rollout.completion_mask
        logps, _ = completion_logps(model, rollout)
        ref_logps = None
        if self.needs_reference:
            with self.reference() as ref:
                ref_logps, _ = completion_logps(ref, rollout)
        total, parts = R.grpo_loss(logps, logps.detach(), ref_logps, advantages, mask, beta=self.beta,
                                   epsilon=self.config.finetuning.epsilon, reduction="sum")
        loss = self.step_share(total, "completions", num_items_in_batch, rewards.numel())  # mean over the step's
        if model.training:
            self.add_tokens_seen(rollout.attention_mask.sum())
        grouped = rewards.view(-1, self.group_size)
        self.record(model, {
            "reward": rewards.mean(), "reward_std": grouped.std(-1).mean(), "kl": parts["kl"],
            "policy_loss": parts["policy_loss"], "clip_fraction": parts["clip_fraction"],
            "response_length": rollout.lengths().mean(), **reward_means,
        })
        return (loss, {"rewards": rewards}) if return_outputs else loss


Trainer = GRPOTrainer
