"""The registry of training stages: each names its trainer class; adding a stage is one entry."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.errors import UserError


@dataclass(frozen=True)
class Stage:
    name: str
    trainer: str  # "module:Class", imported when the stage runs
    description: str


STAGES: dict[str, Stage] = {
    "pt": Stage("pt", "tunelab.train.base_trainer:TunelabTrainer", "continued pre-training on plain text"),
    "sft": Stage("sft", "tunelab.train.base_trainer:TunelabTrainer", "supervised fine-tuning on conversations"),
}
NOT_YET = {"rm": "reward modelling", "dpo": "preference training", "kto": "preference training",
           "ppo": "online RL", "grpo": "online RL"}


def get_stage(name: str) -> Stage:
    if name in STAGES:
        return STAGES[name]
    if name in NOT_YET:
        raise UserError(f"stage: {name} is not available yet (the {NOT_YET[name]} work is not done); "
                        f"available stages: {', '.join(STAGES)}.")
    raise UserError(f"stage: unknown stage '{name}'; available: {', '.join(STAGES)}.")


def trainer_class(stage: Stage) -> type:
    import importlib

    module, _, cls = stage.trainer.partition(":")
    return getattr(importlib.import_module(module), cls)
