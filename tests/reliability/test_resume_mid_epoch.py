"""Resuming from a checkpoint taken in the middle of epoch 1 reproduces the uninterrupted run: the same
losses at every later step and the same final weights (value head included), for every stage.

The runs accumulate (batch 2 × 2 steps) and use AdamW with a warm-up and a linear schedule, so the
optimizer's moments, the scheduler, the data order of epoch 1 (reshuffled, then skipped up to the
checkpoint) and each stage's own state must all come back: kto's z0 of the step, grpo / ppo's
sampling seeds, ppo's adaptive KL, score moments and the rollout it was reusing between ppo_epochs
(checkpoint-5 falls between the two passes over a rollout). The kill / SIGTERM paths are in
test_kill_resume.py; here a copy of the uninterrupted run's checkpoint is resumed in a new folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training

COMMON = {
    "do_train": True, "template": "qwen", "finetuning_type": "full", "max_samples": 8, "cutoff_len": 48,
    "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "warmup_steps": 1,
    "lr_scheduler_type": "linear", "logging_steps": 1, "report_to": "none", "seed": 3, "plot_loss": False,
}  # fmt: skip
GENERATE = {"dataset": "alpaca_en_demo", "max_completion_length": 6, "top_p": 1.0, "top_k": 0, "temperature": 1.0}
# 8 examples in steps of 4: 2 steps an epoch, so checkpoint-3 is one step into epoch 1 (ppo: 4 steps an epoch,
# each rollout serving 2, so checkpoint-5 is one step into epoch 1 and into a rollout)
STAGES = {
    "sft": ({"stage": "sft", "dataset": "identity"}, 5, 3),
    "rm": ({"stage": "rm", "dataset": "dpo_en_demo"}, 5, 3),
    "dpo": ({"stage": "dpo", "dataset": "dpo_en_demo", "pref_ftx": 0.5}, 5, 3),
    "kto": ({"stage": "kto", "dataset": "kto_en_demo"}, 5, 3),
    "grpo": ({"stage": "grpo", **GENERATE, "num_generations": 2, "reward_funcs": "length:200"}, 5, 3),
    "ppo": ({"stage": "ppo", **GENERATE, "ppo_epochs": 2, "reward_model_type": "full", "ppo_score_norm": True}, 6, 5),
}


def train(model: Path, out: Path, keys: dict, **extra: object) -> None:
    values = {"model_name_or_path": model, "output_dir": out, **COMMON, **keys, **extra}
    run_training(parse_config([f"--{k}={v}" for k, v in values.items()]))


def losses_by_step(out: Path) -> dict[int, float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {line["step"]: line["loss"] for line in history if "loss" in line}


def weights(out: Path) -> dict[str, torch.Tensor]:
    found = load_file(str(out / "model.safetensors"))
    if (out / "value_head.safetensors").is_file():
        found.update(load_file(str(out / "value_head.safetensors")))
    return found


@pytest.mark.parametrize("stage", list(STAGES))
def test_resume_mid_epoch_1_reproduces_the_uninterrupted_run(stage, tiny_qwen, reward_model, tmp_path,
                                                             one_torch_thread):
    keys, steps, saved_at = STAGES[stage]
    if stage == "ppo":
        keys = {**keys, "reward_model": reward_model}
    straight = tmp_path / "straight"
    train(tiny_qwen, straight, keys, max_steps=steps, save_steps=saved_at)
    state = json.loads((straight / f"checkpoint-{saved_at}" / "trainer_state.json").read_text())
    assert 1 < state["epoch"] < 2  # mid-epoch, epoch 1

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / f"checkpoint-{saved_at}", resumed / f"checkpoint-{saved_at}")
    train(tiny_qwen, resumed, keys, max_steps=steps, save_steps=saved_at, resume_from_checkpoint=True)

    want, got = losses_by_step(straight), losses_by_step(resumed)
    assert sorted(got) == sorted(want) == list(range(1, steps + 1))
    for step in range(saved_at + 1, steps + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step
    assert want[steps] != pytest.approx(want[1], rel=1e-3)  # the curve moves: agreeing is not trivial
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    checkpoint = weights(straight / f"checkpoint-{saved_at}")
    assert any(not torch.equal(checkpoint[name], a[name]) for name in a)  # it trained after the checkpoint
