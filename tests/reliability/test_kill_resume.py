"""A real `tunelab train` process killed with SIGKILL mid-step or mid-save resumes from its last complete
checkpoint and then reproduces the loss curve of a run that was never interrupted; SIGTERM saves and stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("slow_train_driver.py")


def train_args(model: Path, out: Path, **extra: object) -> list[str]:
    values = {"model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "identity",
              "max_samples": 16, "cutoff_len": 64, "per_device_train_batch_size": 2, "learning_rate": 5e-3,
              "max_steps": 8, "logging_steps": 1, "save_steps": 2, "report_to": "none", "output_dir": out,
              "lr_scheduler_type": "linear", "seed": 3}
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def losses_by_step(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_tunelab(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunelab.cli.main", "train", *args], env=env(), capture_output=True,
                          text=True, timeout=300)


def start_paused(where: str, step: int, marker: Path, args: list[str], seconds: float = 600) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(DRIVER), where, str(step), str(marker), str(seconds), "--", *args],
                               env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the training process ended early: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the training process never reached the pause point")
        time.sleep(0.1)
    return process


@pytest.fixture(scope="module")
def reference(tiny_qwen, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = run_tunelab(train_args(tiny_qwen, out))
    assert result.returncode == 0, result.stderr[-2000:]
    return losses_by_step(out)


@pytest.mark.parametrize(("where", "step", "last_complete"), [("step", 5, 4), ("save", 6, 4)])
def test_sigkill_then_resume_matches_the_uninterrupted_run(tiny_qwen, tmp_path, reference, where, step, last_complete):
    out = tmp_path / "run"
    process = start_paused(where, step, tmp_path / "marker", train_args(tiny_qwen, out))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    complete = sorted(p.name for p in out.glob("checkpoint-*"))
    assert complete == [f"checkpoint-{n}" for n in range(2, last_complete + 1, 2)]
    if where == "save":
        assert (out / ".tunelab-staging" / f"checkpoint-{step}").is_dir()  # the half-written one, never published

    result = run_tunelab(train_args(tiny_qwen, out, resume_from_checkpoint=True))
    assert result.returncode == 0, result.stderr[-2000:]
    if where == "save":
        assert "ignoring the partial checkpoint" in result.stderr
    assert f"resuming from the latest checkpoint {out / f'checkpoint-{last_complete}'}" in result.stderr
    resumed = losses_by_step(out)
    assert sorted(resumed) == list(range(1, 9))
    for s in range(1, 9):
        assert resumed[s] == pytest.approx(reference[s], rel=1e-4, abs=1e-6), s


def test_sigterm_saves_a_checkpoint_and_stops_cleanly(tiny_qwen, tmp_path):
    out = tmp_path / "run"
    process = start_paused("step", 3, tmp_path / "marker", train_args(tiny_qwen, out, save_steps=100), seconds=2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM at step" in stderr
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()
