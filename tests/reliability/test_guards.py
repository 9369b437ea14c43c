"""Non-finite steps are skipped and counted, out-of-memory explains itself, bad output dirs are refused."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tunelab.cli.main import main
from tunelab.config.parser import parse_config
from tunelab.errors import UserError
from tunelab.train.recipe import run_training
from tunelab.train.stages.lm import CausalLMTrainer
from tunelab.train.trainers.base import TunelabTrainer

pytestmark = pytest.mark.usefixtures("private_cache")


def args(model, out, **extra):
    values = {"model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "identity",
              "max_samples": 8, "cutoff_len": 64, "per_device_train_batch_size": 2, "learning_rate": 1e-2,
              "max_steps": 4, "logging_steps": 1, "save_steps": 100, "report_to": "none", "output_dir": out,
              "finetuning_type": "full", "lr_scheduler_type": "constant"}
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


@pytest.fixture
def nan_at_steps(monkeypatch):
    """Rig the loss: NaN on chosen (1-based) optimizer steps."""
    def rig(steps):
        original = CausalLMTrainer.compute_loss  # the trainer of stage sft

        def compute_loss(self, model, inputs, *a, **kw):
            loss = original(self, model, inputs, *a, **kw)
            if self.state.global_step + 1 in steps:
                return loss * float("nan")
            return loss

        monkeypatch.setattr(CausalLMTrainer, "compute_loss", compute_loss)
    return rig


def test_nonfinite_step_is_skipped_and_weights_untouched(tiny_qwen, tmp_path, nan_at_steps):
    from tunelab.train.run.guards import NonFiniteGuard

    snapshots = []
    original = NonFiniteGuard.on_pre_optimizer_step

    def record(self, args_, state, control, model=None, **kw):
        original(self, args_, state, control, model=model, **kw)
        snapshots.append((state.global_step + 1, all(p.grad is None for p in model.parameters())))

    nan_at_steps({2})
    NonFiniteGuard.on_pre_optimizer_step = record
    try:
        run_training(parse_config(args(tiny_qwen, tmp_path / "out")))
    finally:
        NonFiniteGuard.on_pre_optimizer_step = original
    assert snapshots == [(1, False), (2, True), (3, False), (4, False)]
    log = [json.loads(line) for line in (tmp_path / "out" / "trainer_log.jsonl").read_text().splitlines()]
    assert log[-1]["nonfinite_steps_skipped"] == 1


def test_too_many_nonfinite_steps_stop_with_the_step_and_causes(tiny_qwen, tmp_path, nan_at_steps, capsys):
    nan_at_steps({2, 3})
    code = main(["train", *args(tiny_qwen, tmp_path / "out", max_nonfinite_steps=1)])
    err = capsys.readouterr().err
    assert code == 2
    assert "step 3: the loss or gradient is not finite (NaN or inf), for the 2th time (steps 2, 3)" in err
    assert "max_nonfinite_steps=1" in err and "learning rate" in err


def test_out_of_memory_message_has_figures_and_options(tiny_qwen, tmp_path, monkeypatch, capsys):
    def oom(self, *a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity")

    monkeypatch.setattr(TunelabTrainer, "train", oom)
    assert main(["train", *args(tiny_qwen, tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "out of memory (requested 2.50 GiB" in err
    lines = [line.strip() for line in err.splitlines() if line.strip()[:2] in {"1.", "2.", "3.", "4.", "5.", "6."}]
    assert lines[0].startswith("1. activation_checkpointing: true") and lines[-1].startswith("6. deepspeed")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_is_refused_before_loading(tiny_qwen, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert main(["train", *args(tiny_qwen, locked / "run")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_output_dir_that_is_a_file_is_refused(tiny_qwen, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file, not a folder")
    assert main(["train", *args(tiny_qwen, tmp_path / "taken")]) == 2
    assert f"'{tmp_path / 'taken'}' is a file; choose a folder for the run's checkpoints and logs." in capsys.readouterr().err


def test_too_little_disk_space_is_refused(tiny_qwen, tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    assert main(["train", *args(tiny_qwen, tmp_path / "out")]) == 2
    assert "GiB free, but one checkpoint needs about" in capsys.readouterr().err


def test_failed_save_keeps_the_previous_checkpoint(tiny_qwen, tmp_path, monkeypatch):
    from transformers import Trainer

    original = Trainer._save_optimizer_and_scheduler

    def fail_second(self, output_dir):
        if self.state.global_step == 4:
            raise OSError(28, "No space left on device", output_dir)
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", fail_second)
    with pytest.raises(UserError) as info:
        run_training(parse_config(args(tiny_qwen, tmp_path / "out", save_steps=2)))
    assert "saving checkpoint-4 failed: No space left on device" in str(info.value)
    assert "checkpoint-2 is intact" in str(info.value)
    assert (tmp_path / "out" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (tmp_path / "out" / "checkpoint-4").exists()
