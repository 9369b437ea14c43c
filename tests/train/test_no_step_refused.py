"""A run that would take no optimizer step is refused by name instead of "training" 0 steps with success."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.reliability._runkit import train_in_process

from tunelab.errors import UserError


def test_drop_last_with_fewer_rows_than_a_batch_is_refused(tiny_qwen: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="drops the only batch: the training set has 3 rows, fewer than one batch of 4"):
        train_in_process(tiny_qwen, tmp_path / "run", save_steps=100, max_samples=3, per_device_train_batch_size=4,
                         dataloader_drop_last=True)
    assert not (tmp_path / "run" / "trainer_log.jsonl").exists()


def test_drop_last_with_one_full_batch_trains(tiny_qwen: Path, tmp_path: Path) -> None:
    train_in_process(tiny_qwen, tmp_path / "run", save_steps=100, max_samples=4, per_device_train_batch_size=4,
                     dataloader_drop_last=True, max_steps=1)
    lines = [json.loads(line) for line in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1]
