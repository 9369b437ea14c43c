"""stage: grpo end to end on tunelab/tiny-chat: a brevity reward rises; bad configs exit 2 with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.cli.main import main
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training


def grpo_args(out: Path, **extra: object) -> list[str]:
    values = {
        "model_name_or_path": "tunelab/tiny-chat", "stage": "grpo", "do_train": True, "template": "qwen",
        "dataset": "alpaca_en_demo", "max_samples": 16, "cutoff_len": 64, "per_device_train_batch_size": 2,
        "finetuning_type": "full", "learning_rate": 1e-2, "max_steps": 12, "logging_steps": 1, "save_steps": 100,
        "report_to": "none", "output_dir": out, "lr_scheduler_type": "constant", "seed": 0, "num_generations": 4,
        "max_completion_length": 8, "reward_funcs": "length:60", "top_p": 1.0, "top_k": 0, "temperature": 1.0,
    }
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def log_lines(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    return [line for line in lines if "loss" in line]


def test_grpo_raises_a_brevity_reward(tmp_path):
    out = tmp_path / "grpo"
    run_training(parse_config(grpo_args(out)))
    lines = log_lines(out)
    assert len(lines) == 12
    for key in ("reward", "reward_std", "kl", "policy_loss", "clip_fraction", "response_length", "rewards/length:60"):
        assert all(key in line for line in lines), key
    assert lines[0]["kl"] == 0  # policy == reference before the first update
    assert lines[-1]["kl"] > 0
    early = sum(line["reward"] for line in lines[:4]) / 4
    late = sum(line["reward"] for line in lines[-3:]) / 3
    assert late > early + 0.1, (early, late)
    assert sum(line["response_length"] for line in lines[-3:]) / 3 < 8  # completions now stop before the limit
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()


def test_user_reward_function_from_a_file_and_a_module(tmp_path):
    (tmp_path / "my_rewards.py").write_text(
        "def ones(completions, **kwargs):\n    return [1.0 for _ in completions]\n"
    )
    out = tmp_path / "file"
    run_training(parse_config(grpo_args(out, reward_funcs="my_rewards.py:ones,length", max_steps=1,
                                        reward_weights="2,0", finetuning_type="lora")))
    line = log_lines(out)[0]
    assert line["rewards/ones"] == 1.0 and line["reward"] == 2.0 and line["reward_std"] == 0
    assert line["policy_loss"] == 0  # equal rewards in every group: no advantage, no signal
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(("extra", "message"), [
    ({"reward_funcs": ""}, "needs something to score completions"),
    ({"num_generations": 1}, "num_generations: 1 is out of range; it must be an integer >= 2"),  # config/ranges.py
    ({"reward_funcs": "bleu"}, "built-ins: exact_match, format:<tag>"),
    ({"reward_funcs": "no_such_module_xyz:f"}, "cannot import module 'no_such_module_xyz'"),
    ({"reward_funcs": "json:no_function"}, "json has no function 'no_function'"),
    ({"reward_funcs": "missing.py:f"}, "no file missing.py"),
    ({"do_sample": False}, "needs do_sample: true"),
    ({"reward_weights": "1,2"}, "reward_weights has 2 values for 1 rewards"),
    ({"precompute_ref_log_probs": True}, "precompute_ref_log_probs does not apply"),
])
def test_bad_grpo_configs_exit_2(tmp_path, capsys, extra, message):
    args = grpo_args(tmp_path / "bad", **extra)
    assert main(["train", *args]) == 2
    assert message in capsys.readouterr().err
