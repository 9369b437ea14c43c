"""Resuming checks that the checkpoint is this run's, as it was written, on the same data, and trains
exactly the steps the uninterrupted run trained: no extra step after the last checkpoint, no silent
continuation of another configuration, no fresh optimizer state for a deleted file.

One short run (3 steps, a checkpoint each step, 4 steps an epoch: checkpoint-3 is mid-epoch) is made
once; each test resumes copies of its checkpoints in its own folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunelab.config.parser import parse_config
from tunelab.errors import UserError
from tunelab.train.recipe import run_training

ROWS = [{"instruction": f"question {i}", "input": "", "output": f"answer number {i} " * 3} for i in range(8)]


def make_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    (folder / "mine.json").write_text(json.dumps(ROWS))
    return folder


def train(model: Path, data: Path, out: Path, **extra: object):
    values = {"model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "mine",
              "dataset_dir": data, "cutoff_len": 48, "per_device_train_batch_size": 2, "learning_rate": 5e-3,
              "finetuning_type": "full", "max_steps": 3, "logging_steps": 1, "save_steps": 1, "report_to": "none",
              "output_dir": out, "lr_scheduler_type": "constant", "seed": 3, "plot_loss": False}
    values.update(extra)
    return run_training(parse_config([f"--{k}={v}" for k, v in values.items()]))


@pytest.fixture(scope="module")
def straight(tiny_qwen, tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, output_dir) of the uninterrupted run."""
    root = tmp_path_factory.mktemp("resume-checks")
    data = make_data(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_CACHE", str(root / "cache"))
        patch.chdir(root)
        train(tiny_qwen, data, root / "straight")
    return data, root / "straight"


def copy_checkpoint(straight_dir: Path, step: int, out: Path, *, log: bool = False) -> Path:
    out.mkdir()
    shutil.copytree(straight_dir / f"checkpoint-{step}", out / f"checkpoint-{step}")
    if log:
        shutil.copy(straight_dir / "trainer_log.jsonl", out / "trainer_log.jsonl")
    return out / f"checkpoint-{step}"


def test_resuming_the_last_checkpoint_trains_no_extra_step(tiny_qwen, straight, tmp_path, caplog):
    data, straight_dir = straight
    out = tmp_path / "run"
    copy_checkpoint(straight_dir, 3, out)
    with caplog.at_level(logging.WARNING, logger="tunelab.train"):
        train(tiny_qwen, data, out, resume_from_checkpoint=True)
    assert "step 3 already reached max_steps = 3: no step left to train" in caplog.text
    want, got = load_file(str(straight_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(got[name], want[name]) for name in want)  # was off by 5.0e-3: a 4th step was trained
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3


def test_output_and_logging_keys_may_change_and_the_result_is_the_same(tiny_qwen, straight, tmp_path):
    data, straight_dir = straight
    out = tmp_path / "run"
    copy_checkpoint(straight_dir, 1, out)
    train(tiny_qwen, data, out, resume_from_checkpoint=True, logging_steps=2, save_steps=5,
          preprocessing_num_workers=1)
    want, got = load_file(str(straight_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)


def test_resuming_another_configuration_is_refused_naming_the_keys(tiny_qwen, straight, tmp_path):
    data, straight_dir = straight
    out = tmp_path / "run"
    copy_checkpoint(straight_dir, 2, out)
    with pytest.raises(UserError) as refused:
        train(tiny_qwen, data, out, resume_from_checkpoint=True, learning_rate=1e-3, seed=4)
    message = str(refused.value)
    assert f"cannot resume {out / 'checkpoint-2'}: it was trained with another configuration" in message
    assert "learning_rate: 0.005 -> 0.001" in message and "seed: 3 -> 4" in message
    assert "max_steps" not in message  # only the keys that differ
    assert not (out / "model.safetensors").exists()


def test_checkpoint_records_the_weight_deciding_values(straight):
    record = json.loads((straight[1] / "checkpoint-1" / "tunelab_run.json").read_text())
    assert record["config"]["learning_rate"] == 5e-3 and record["config"]["seed"] == 3
    assert record["config"]["stage"] == "sft" and len(record["config_hash"]) == 64
    assert not {"output_dir", "logging_steps", "save_steps", "report_to", "hf_hub_token"} & set(record["config"])
    assert [Path(name).name for name in record["data"]["files"]] == ["mine.json"]


def test_overwrite_output_dir_removes_the_old_runs_checkpoints(tiny_qwen, straight, tmp_path, caplog):
    data, straight_dir = straight
    out = tmp_path / "run"
    shutil.copytree(straight_dir, out)
    with caplog.at_level(logging.WARNING, logger="tunelab.train"):
        train(tiny_qwen, data, out, overwrite_output_dir=True, learning_rate=1e-3, max_steps=1, save_steps=100)
    assert "overwrite_output_dir: removed the 3 checkpoints of the earlier run" in caplog.text
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]  # this run's, not the old 2 and 3
    assert json.loads((out / "checkpoint-1" / "tunelab_run.json").read_text())["config"]["learning_rate"] == 1e-3


@pytest.mark.parametrize(("damage", "named"), [
    ("delete", "optimizer.pt"), ("delete", "scheduler.pt"), ("delete", "rng_state.pth"),
    ("flip", "model.safetensors"),
])  # fmt: skip
def test_a_missing_or_changed_checkpoint_file_is_refused(tiny_qwen, straight, tmp_path, damage, named):
    data, straight_dir = straight
    out = tmp_path / "run"
    checkpoint = copy_checkpoint(straight_dir, 2, out)
    path = checkpoint / named
    if damage == "delete":
        path.unlink()
    else:
        raw = bytearray(path.read_bytes())
        middle = len(raw) // 2
        raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
        path.write_bytes(bytes(raw))
    with pytest.raises(UserError) as refused:
        train(tiny_qwen, data, out, resume_from_checkpoint=True)
    message = str(refused.value)
    assert f"cannot resume {checkpoint}: it is not as it was written ({named} " in message
    assert ("is missing" if damage == "delete" else "differs from what was written") in message


def test_changed_training_data_is_refused_naming_the_file(tiny_qwen, tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "run"
    train(tiny_qwen, data, out, max_steps=1)
    rows = [*ROWS[:-1], {"instruction": "changed", "input": "", "output": "another answer"}]
    (data / "mine.json").write_text(json.dumps(rows))
    with pytest.raises(UserError) as refused:
        train(tiny_qwen, data, out, max_steps=1, resume_from_checkpoint=True)
    assert f"the training data changed since it was saved ({data / 'mine.json'} changed (sha256))" in str(refused.value)


def test_a_damaged_trainer_log_line_is_skipped_with_a_message(tiny_qwen, straight, tmp_path, caplog):
    data, straight_dir = straight
    out = tmp_path / "run"
    copy_checkpoint(straight_dir, 2, out, log=True)
    lines = (out / "trainer_log.jsonl").read_text().splitlines()
    lines[0] = lines[0][: len(lines[0]) // 2]  # the line of step 1, cut
    (out / "trainer_log.jsonl").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="tunelab.train"):
        train(tiny_qwen, data, out, resume_from_checkpoint=True)
    assert f"{out / 'trainer_log.jsonl'} line 1 is damaged" in caplog.text
    steps = [json.loads(line)["step"] for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == [2, 3, 3]  # step 2 kept, step 3 trained again; the train summary at 3
