"""stage: ppo end to end on tunelab/tiny-chat.

`test_ppo_raises_the_reward_of_a_reward_model_trained_by_stage_rm`: a reward model is trained in the
test by `stage: rm` on toy pairs (chosen answers are English words, rejected ones other tokens), then
PPO against it with a fixed seed: the mean reward of the last rollouts is clearly above the first
ones (seed 0: from about -1 to about 7 in 12 rollouts; docs/rl.md). The other test checks the
mechanics with a hand-built reward model: rollouts, reuse over ppo_epochs, logs, the KL starting at
0, saving the policy + value head.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunelab.cli.main import main
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training


def build_word_reward_model(folder: Path) -> None:
    """tiny-chat + a hand-set value head (the last-hidden-state direction of sequences ending in ' the'): a reward
    model for the mechanics only, as PPO reads scores at the end-of-turn markup it appends to each completion."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.model.load import resolve_model_path
    from tunelab.model.value_head import ValueHead, save_value_head

    base = resolve_model_path("tunelab/tiny-chat")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    target = tokenizer.encode(" the", add_special_tokens=False)[-1]
    ids = torch.randint(10, len(tokenizer), (128, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        other = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1].mean(0)
        ids[:, -1] = target
        wanted = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1].mean(0)
    direction = wanted - other
    head = ValueHead(direction.numel())
    head.summary.weight.data = (direction / direction.norm()).unsqueeze(0)
    head.summary.bias.data.zero_()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_value_head(head, folder)


def ppo_args(out: Path, rm: Path, **extra: object) -> list[str]:
    values = {
        "model_name_or_path": "tunelab/tiny-chat", "stage": "ppo", "do_train": True, "template": "qwen",
        "dataset": "alpaca_en_demo", "max_samples": 16, "cutoff_len": 64, "per_device_train_batch_size": 4,
        "finetuning_type": "full", "learning_rate": 1e-2, "max_steps": 6, "logging_steps": 1, "save_steps": 100,
        "report_to": "none", "output_dir": out, "lr_scheduler_type": "constant", "seed": 0, "ppo_epochs": 2,
        "max_completion_length": 6, "top_p": 1.0, "top_k": 0, "temperature": 1.0, "reward_model": rm,
        "reward_model_type": "full",
    }
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def write_english_preference_data(folder: Path, pairs_per_prompt: int = 4, seed: int = 0) -> None:
    """A pairwise (`ranking: true`) alpaca set: for every alpaca_en_demo prompt, `chosen` is 4-24 random English
    word tokens of tiny-chat's tokenizer (" the", " sky", ...) and `rejected` as many random other tokens (word
    pieces, digits, punctuation, CJK characters), so the reward model learns "answers in English words"."""
    import random

    from transformers import AutoTokenizer

    from tunelab.data.dataset_info import bundled_data_dir
    from tunelab.model.load import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("tunelab/tiny-chat"))
    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    special = set(tokenizer.all_special_ids)
    words = [i for i, p in enumerate(pieces) if p.startswith(" ") and p[1:].isascii() and p[1:].isalpha()]
    others = [i for i, p in enumerate(pieces) if i not in special and i not in set(words) and p and p.strip() == p
              and p.isprintable() and "\ufffd" not in p]  # whole characters: they survive decode + encode
    rng = random.Random(seed)
    prompts = json.loads((bundled_data_dir() / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    rows = []
    for _ in range(pairs_per_prompt):
        for row in prompts:
            length = rng.randint(4, 24)
            rows.append({"instruction": row["instruction"], "input": row["input"],
                         "chosen": tokenizer.decode(rng.choices(words, k=length)),
                         "rejected": tokenizer.decode(rng.choices(others, k=length))})
    folder.mkdir(parents=True)
    (folder / "english_pairs.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"english_pairs": {
        "file_name": "english_pairs.json", "ranking": True,
        "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}}}))


def train_rm_then_ppo(folder: Path, seed: int = 0) -> tuple[list[float], list[dict]]:
    """stage: rm on the English pairs, then stage: ppo against it; (rm accuracy per step, ppo rollout log lines)."""
    write_english_preference_data(folder / "rm_data", seed=seed)
    rm = folder / "rm"
    rm_args = {"model_name_or_path": "tunelab/tiny-chat", "stage": "rm", "do_train": True, "template": "qwen",
               "dataset": "english_pairs", "dataset_dir": folder / "rm_data", "cutoff_len": 128,
               "finetuning_type": "full", "per_device_train_batch_size": 8, "learning_rate": 3e-3, "max_steps": 48,
               "lr_scheduler_type": "constant", "logging_steps": 1, "save_steps": 1000, "report_to": "none",
               "output_dir": rm, "seed": seed}
    run_training(parse_config([f"--{k}={v}" for k, v in rm_args.items()]))
    rm_lines = [json.loads(line) for line in (rm / "trainer_log.jsonl").read_text().splitlines()]
    out = folder / "ppo"
    run_training(parse_config(ppo_args(out, rm, per_device_train_batch_size=16, max_samples=48, max_steps=48,
                                       ppo_epochs=4, max_completion_length=8, seed=seed)))
    lines = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    return [line["accuracy"] for line in rm_lines if "accuracy" in line], [line for line in lines if "reward" in line]


def test_ppo_raises_the_reward_of_a_reward_model_trained_by_stage_rm(tmp_path):
    accuracy, rollouts = train_rm_then_ppo(tmp_path, seed=0)
    assert len(accuracy) == 48 and sum(accuracy[-8:]) / 8 >= 0.9  # the reward model tells the pairs apart
    assert len(rollouts) == 12  # 48 optimiser steps, 4 per rollout (ppo_epochs 4)
    early = sum(line["reward"] for line in rollouts[:4]) / 4
    late = sum(line["reward"] for line in rollouts[-4:]) / 4
    assert late > early + 2.0, (early, late, [round(line["reward"], 2) for line in rollouts])
    assert rollouts[0]["kl"] == 0 and rollouts[-1]["kl"] > 0  # it got there by moving away from the reference


def test_ppo_runs_reuses_rollouts_and_saves_policy_with_value_head(tmp_path):
    build_word_reward_model(tmp_path / "rm")
    out = tmp_path / "ppo"
    run_training(parse_config(ppo_args(out, tmp_path / "rm")))
    lines = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    assert len(steps) == 6
    rollout_steps = [line for line in steps if "reward" in line]
    assert len(rollout_steps) == 3  # ppo_epochs 2: every rollout serves two optimiser steps
    for key in ("policy_loss", "value_loss", "clip_fraction"):
        assert all(key in line for line in steps), key
    for key in ("kl", "kl_coef", "response_length"):
        assert all(key in line for line in rollout_steps), key
    assert rollout_steps[0]["kl"] == 0 and rollout_steps[0]["kl_coef"] == 0.2
    assert all(torch.isfinite(torch.tensor(line["loss"])) for line in steps)
    assert (out / "model.safetensors").is_file() and (out / "value_head.safetensors").is_file()
    assert json.loads((out / "ppo_state.json").read_text())["kl_coef"] < 0.2  # KL below target: β shrank


@pytest.mark.parametrize(("extra", "message"), [
    ({"reward_model": ""}, "stage: ppo needs reward_model"),
    ({"ppo_epochs": 0}, "ppo_epochs: 0 is out of range; it must be an integer >= 1"),
    ({"reward_model_type": "api"}, "reward_model_type: api needs reward_model to be a URL"),
])
def test_bad_ppo_configs_exit_2(tmp_path, capsys, extra, message):
    assert main(["train", *ppo_args(tmp_path / "bad", "rm_folder", **extra)]) == 2
    assert message in capsys.readouterr().err
