"""An in-process `tunelab train` of the tiny model for the reliability tests (disk full, signals)."""

from __future__ import annotations

from pathlib import Path

from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training


def train_in_process(model: Path, out: Path, *, save_steps: int, **extra: object):
    """Two steps of full fine-tuning on `identity`; `extra` overrides any key."""
    values = {"model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "identity",
              "max_samples": 8, "cutoff_len": 48, "per_device_train_batch_size": 2, "learning_rate": 5e-3,
              "finetuning_type": "full", "max_steps": 2, "logging_steps": 1, "save_steps": save_steps,
              "report_to": "none", "output_dir": out, "seed": 3, "plot_loss": False}
    values.update(extra)
    return run_training(parse_config([f"--{k}={v}" for k, v in values.items()]))
