"""Kill -9 at every file-system write of a checkpoint save and of the final save (issue #24 acceptance).

The same fault injector as tests/export/test_export_kill.py (an audit hook counting writes: open for
writing, rename, remove, mkdir, rmtree) SIGKILLs a forked child at the k-th write while it saves
checkpoint-2 the way the trainer does (staging folder, manifest, one rename) and then publishes the
final model over the run folder. After each kill the readers are asked: resume (`resolve_resume`, which
checks every file of the checkpoint it picks against its manifest) must pick a complete checkpoint,
the earlier one always intact; a run folder with a final-model manifest must match it; the run's log
and config survive. Timing plays no part: every write moment is hit once.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tunelab.train.run.atomic_publish import publish as publish_checkpoint
from tunelab.train.run.atomic_publish import staging_root
from tunelab.train.run.resume import resolve_resume
from tunelab.utils import publish

WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"}
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json")


def _is_write(event: str, args: tuple) -> bool:
    if event in WRITE_EVENTS:
        return True
    return event == "open" and len(args) >= 2 and isinstance(args[1], str) and any(f in args[1] for f in "wax+")


def _write_checkpoint(folder: Path, step: int) -> None:
    folder.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        (folder / name).write_bytes(f"{name} of step {step}".encode() * 200)
    publish.write_manifest(folder, "checkpoint")


def _run(tmp: Path) -> Path:
    """A run folder after step 1: one complete checkpoint, the log and the resolved config."""
    run = tmp / "run"
    run.mkdir(parents=True)
    staged = staging_root(run) / "checkpoint-1"
    _write_checkpoint(staged, 1)
    publish_checkpoint(staged, run / "checkpoint-1")
    staging_root(run).rmdir()
    (run / "trainer_log.jsonl").write_text('{"current_steps": 1, "loss": 1.0}\n')
    (run / "tunelab_config.yaml").write_text("seed: 42\n")
    return run


def _save_step_2_and_the_final_model(run: Path) -> None:
    staged = staging_root(run) / "checkpoint-2"
    _write_checkpoint(staged, 2)
    publish_checkpoint(staged, run / "checkpoint-2")
    staging_root(run).rmdir()
    final = publish.staging_for(run)
    (final / "adapter_model.safetensors").write_bytes(b"final adapter" * 300)
    (final / "adapter_config.json").write_text("{}")
    (final / "tokenizer.json").write_text("{}")
    publish.write_manifest(final, "model")
    publish.publish(final, run, keep_nested_manifests=True)


def _in_child(run: Path, kill_at: int, counts: int | None = None) -> int:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # file operations only in the child: no torch, so forking is safe
        count = 0

        def hook(event: str, args: tuple) -> None:
            nonlocal count
            if _is_write(event, args):
                count += 1
                if count == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

        sys.addaudithook(hook)
        _save_step_2_and_the_final_model(run)
        os.write(write, str(count).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    text = os.read(read, 64).decode()
    os.close(read)
    if kill_at:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, kill_at
    return int(text) if text else 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_at_every_write_of_a_save_leaves_a_resumable_run(tmp_path):
    total = _in_child(_run(tmp_path / "count"), kill_at=0)
    assert total >= 25
    picked = set()
    for kill_at in range(1, total + 1):
        run = _run(tmp_path / f"k{kill_at}")
        _in_child(run, kill_at)
        if (run / publish.MANIFEST_NAME).is_file():  # a final model is there: it is complete
            assert publish.check_folder(run, "the final model", hashes=True), kill_at
        checkpoint = Path(resolve_resume(str(run), "true", False))  # refuses a damaged checkpoint
        picked.add(checkpoint.name)
        assert publish.check_folder(checkpoint, "the checkpoint", hashes=True), kill_at
        assert publish.check_folder(run / "checkpoint-1", "checkpoint-1", hashes=True), kill_at
        assert (run / "trainer_log.jsonl").read_text() == '{"current_steps": 1, "loss": 1.0}\n', kill_at
        assert (run / "tunelab_config.yaml").is_file(), kill_at
        assert not list(run.parent.glob(".run.tunelab-*")) and not staging_root(run).exists(), kill_at
    assert picked == {"checkpoint-1", "checkpoint-2"}
