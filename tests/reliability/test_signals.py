"""SIGTERM (and SIGINT) anywhere in a run end it cleanly: one message saying what is on disk and what to
resume, exit code 143 (128 + 15), never a bare death by signal. In the last step or during the final save
the final model is still saved, complete (its manifest matches). The in-process tests send the signal to
this process from inside the phase; one test checks the real `tunelab train` process and its exit code."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from _runkit import train_in_process

from tunelab.errors import UserError
from tunelab.train.trainers.base import TunelabTrainer
from tunelab.utils.publish import check_folder

sys.path.insert(0, str(Path(__file__).parent))
from test_kill_resume import start_paused, train_args  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def train(model: Path, out: Path, **extra: object):
    return train_in_process(model, out, save_steps=100, **extra)


def sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_while_tokenizing_is_one_message_and_exit_143(tiny_qwen, tmp_path, monkeypatch):
    import tunelab.train.data_prep as data_prep

    def prepare_data(*args, **kwargs):
        sigterm_self()
        raise AssertionError("the signal should have stopped the run")

    monkeypatch.setattr(data_prep, "prepare_data", prepare_data)
    with pytest.raises(UserError) as stopped:
        train(tiny_qwen, tmp_path / "run")
    assert stopped.value.exit_code == 143
    assert str(stopped.value) == ("stopped by SIGTERM while tokenizing the data, before training ended; nothing was "
                                  "trained yet: run the same command again.")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are restored


def test_sigterm_in_the_last_step_still_saves_the_final_model(tiny_qwen, tmp_path, monkeypatch):
    original = TunelabTrainer.training_step

    def training_step(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        if self.state.global_step + 1 == self.state.max_steps:
            sigterm_self()
        return loss

    monkeypatch.setattr(TunelabTrainer, "training_step", training_step)
    out = tmp_path / "run"
    with pytest.raises(UserError) as stopped:
        train(tiny_qwen, out)
    assert stopped.value.exit_code == 143
    assert str(stopped.value) == (f"stopped by SIGTERM at step 2, the last: training finished and the final model is "
                                  f"saved in {out}; evaluation and prediction were skipped.")
    assert check_folder(out, "the run folder", hashes=True)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_sigterm_during_the_final_save_lets_it_finish(tiny_qwen, tmp_path, monkeypatch):
    import tunelab.train.run.outputs as outputs

    original = outputs.save_tokenizer

    def save_tokenizer(*args, **kwargs):
        sigterm_self()  # mid-save: the weights are staged, the tokenizer not yet
        return original(*args, **kwargs)

    monkeypatch.setattr(outputs, "save_tokenizer", save_tokenizer)
    out = tmp_path / "run"
    with pytest.raises(UserError) as stopped:
        train(tiny_qwen, out)
    assert stopped.value.exit_code == 143
    assert "the final model is saved in" in str(stopped.value)
    assert check_folder(out, "the run folder", hashes=True)
    assert (out / "tokenizer.json").is_file()


def test_sigterm_outside_the_training_loop_ends_the_process_with_143_and_a_message(tiny_qwen, tmp_path):
    process = start_paused("prepare", 0, tmp_path / "marker", train_args(tiny_qwen, tmp_path / "run"), seconds=30)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM while tokenizing the data, before training ended" in stderr
    assert "Traceback" not in stderr
