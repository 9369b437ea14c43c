"""The registry of training stages: each names its trainer class; adding a stage is one entry."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.errors import UserError


@dataclass(frozen=True)
class Stage:
    """A stage is its loss (inside the trainer class), its collator and a description.

    `trainer` and `collator` are "module:name" strings imported only when the stage runs. The trainer
    class takes the usual `transformers.Trainer` arguments plus `config=` (the resolved Config); the
    collator factory is `f(prepared, tokenizer, model, config) -> collator`.
    """

    name: str
    trainer: str
    collator: str
    description: str
    check: str | None = None  # "module:function(config)" run before any weights load, for stage-specific keys


STAGES: dict[str, Stage] = {
    "pt": Stage("pt", "tunelab.train.lm_trainer:CausalLMTrainer", "tunelab.train.collators:lm_collator",
                "continued pre-training on plain text"),
    "sft": Stage("sft", "tunelab.train.lm_trainer:CausalLMTrainer", "tunelab.train.collators:lm_collator",
                 "supervised fine-tuning on conversations"),
    "rm": Stage("rm", "tunelab.train.rm_trainer:RewardTrainer", "tunelab.train.pair_collators:pair_collator",
                "reward modelling: a value head trained on chosen / rejected pairs"),
    "dpo": Stage("dpo", "tunelab.train.pref_trainer:PreferenceTrainer", "tunelab.train.pair_collators:pair_collator",
                 "preference optimisation on pairs (pref_loss: sigmoid, hinge, ipo, kto_pair, orpo, simpo)",
                 check="tunelab.train.pref_trainer:check_preference_config"),
    "kto": Stage("kto", "tunelab.train.kto_trainer:KTOTrainer", "tunelab.train.pair_collators:kto_collator",
                 "KTO on examples labelled desirable or undesirable (kto_tag)",
                 check="tunelab.train.kto_trainer:check_kto_config"),
    "ppo": Stage("ppo", "tunelab.train.ppo_trainer:PPOTrainer", "tunelab.train.rl_collators:prompt_collator",
                 "online RL: PPO with a value head against a reward model trained by stage: rm",
                 check="tunelab.train.ppo_trainer:check_ppo_config"),
    "grpo": Stage("grpo", "tunelab.train.grpo_trainer:GRPOTrainer", "tunelab.train.rl_collators:prompt_collator",
                  "online RL: GRPO with reward functions and/or a reward model",
                  check="tunelab.train.grpo_trainer:check_grpo_config"),
}
NOT_YET: dict[str, str] = {}


def get_stage(name: str) -> Stage:
    if name in STAGES:
        return STAGES[name]
    if name in NOT_YET:
        raise UserError(f"stage: {name} is not available yet (the {NOT_YET[name]} work is not done); "
                        f"available stages: {', '.join(STAGES)}.")
    raise UserError(f"stage: unknown stage '{name}'; available: {', '.join(STAGES)}.")


def _load(reference: str) -> object:
    import importlib

    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def trainer_class(stage: Stage) -> type:
    return _load(stage.trainer)  # type: ignore[return-value]


def collator_factory(stage: Stage) -> object:
    return _load(stage.collator)


def check_stage_config(stage: Stage, config: object) -> None:
    """Run the stage's own checks (they raise UserError), so they fail before weights load."""
    if stage.check is not None:
        _load(stage.check)(config)  # type: ignore[operator]
