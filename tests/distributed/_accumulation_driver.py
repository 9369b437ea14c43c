"""Runs the accumulation-equivalence cases: one `run_training` per case, then what the comparison needs
(the logged losses and the trained weights) written under the case's output folder.

Imported by the tests for one-process runs, and started under `torch.distributed.run` (gloo, CPU)
for the two-process ones, where one launch runs every case in turn (process start-up and the
process group are paid once):

    python -m torch.distributed.run --nproc_per_node 2 _accumulation_driver.py MODEL ROOT CASE ...

Every case trains full weights with plain SGD and no gradient clipping, so the weights after a step
are the initial weights minus lr x the gradient: a gradient that is off by any factor shows up in
them (Adam's first step is lr x sign(g) and clipping rescales g, so either would hide a wrong scale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: the stages and pref_loss values of issue #20, and the keys each needs on top of COMMON
CASES: dict[str, dict[str, Any]] = {
    "pt": {"stage": "pt", "dataset": "c4_demo"},
    "sft": {"stage": "sft", "dataset": "identity"},
    "rm": {"stage": "rm", "dataset": "dpo_en_demo"},
    **{f"dpo_{loss}": {"stage": "dpo", "dataset": "dpo_en_demo", "pref_loss": loss}
       for loss in ("sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo")},
    "dpo_ftx": {"stage": "dpo", "dataset": "dpo_en_demo", "pref_loss": "sigmoid", "pref_ftx": 0.5},
    "dpo_bco": {"stage": "dpo", "dataset": "dpo_en_demo", "pref_loss": "sigmoid", "pref_bco_weight": 0.5},
    "kto": {"stage": "kto", "dataset": "kto_en_demo", "pref_ftx": 0.5, "max_samples": 8},  # it has 10: 8 a step
    "ppo": {"stage": "ppo", "dataset": "alpaca_en_demo", "reward_model_type": "full", "ppo_epochs": 2,
            "max_completion_length": 6, "top_p": 1.0, "top_k": 0, "temperature": 1.0, "ppo_score_norm": True,
            "ppo_whiten_rewards": True},  # reward_model: the test's
    "grpo": {"stage": "grpo", "dataset": "alpaca_en_demo", "num_generations": 2, "max_completion_length": 6,
             "reward_funcs": "length:200", "top_p": 1.0, "top_k": 0, "temperature": 1.0, "grpo_beta": 0.04},
}

#: two optimizer steps of 8 examples each (16 examples: the second step sees 8 others, from moved weights; the
#: 8 of dpo_en_demo, and of kto, again in a new order in epoch 2)
COMMON: dict[str, Any] = {
    "do_train": True, "template": "qwen", "finetuning_type": "full", "max_samples": 16, "cutoff_len": 48,
    "learning_rate": 0.5, "optim": "sgd", "max_grad_norm": 0, "lr_scheduler_type": "constant", "max_steps": 2,
    "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0, "plot_loss": False,
    "use_cpu": True, "ddp_find_unused_parameters": False, "overwrite_output_dir": True,
}  # fmt: skip

LOSSES_FILE = "accumulation_losses.json"


def case_args(model: Path | str, out: Path, case: str, **extra: Any) -> list[str]:
    """The `tunelab train` arguments of one case (extra keys win)."""
    values = {"model_name_or_path": model, "output_dir": out, **COMMON, **CASES[case], **extra}
    return [f"--{k}={v}" for k, v in values.items()]


def run_case(model: Path | str, out: Path, case: str, **extra: Any) -> dict[str, Any]:
    """Train one case; returns {"losses": [per logging step], "logs": [the log records], "tokens_seen"}; rank 0
    also writes them to out/LOSSES_FILE and the model to out (run_training saves it)."""
    from tunelab.config.parser import parse_config
    from tunelab.train.recipe import run_training

    run = run_training(parse_config(case_args(model, out, case, **extra)))
    if not _is_main_process():  # only rank 0 writes trainer_state.json
        return {"losses": [], "logs": []}
    logs = [dict(r) for r in _log_history(run)]
    result = {"losses": [r["loss"] for r in logs if "loss" in r], "logs": [r for r in logs if "loss" in r],
              "tokens_seen": json.loads((out / "train_results.json").read_text())["num_input_tokens_seen"]}
    (out / LOSSES_FILE).write_text(json.dumps(result))
    return result


def trained_weights(out: Path) -> dict[str, Any]:
    """The weights a case saved: the model, and the value head (rm, ppo) under its `v_head.` keys."""
    from safetensors.torch import load_file

    weights = load_file(str(out / "model.safetensors"))
    if (out / "value_head.safetensors").is_file():
        weights.update(load_file(str(out / "value_head.safetensors")))
    return weights


def _log_history(run: Any) -> list[dict[str, Any]]:
    path = run.output_dir / "trainer_state.json"
    return json.loads(path.read_text())["log_history"]


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def main(argv: list[str]) -> int:
    """MODEL ROOT CASE[:key=value,...] ...: run the i-th case into ROOT/i, 2 per device, 2 accumulation steps."""
    import torch

    torch.set_num_threads(1)
    model, root, *cases = argv
    for index, spec in enumerate(cases):
        case, _, overrides = spec.partition(":")
        extra: dict[str, Any] = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2,
                                 "ddp_backend": "gloo"}
        extra.update(dict(item.split("=", 1) for item in overrides.split(",") if item))
        run_case(model, Path(root) / str(index), case, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
