"""One run per output folder (train/run/run_lock.py): a second `tunelab train` into a folder with a live run
exits 2 naming the holder while the first completes normally; a stale lock is taken over with a log line."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from tests.reliability._runkit import train_in_process
from tests.reliability.test_kill_resume import losses_by_step, run_tunelab, start_paused, train_args

from tunelab.errors import UserError
from tunelab.train.run import run_lock


def _dead_pid() -> int:
    """A pid that certainly names no process: a child that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    holder = run_lock.acquire(tmp_path / "run")
    assert run_lock.live_holder(tmp_path / "run") == holder
    assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
    with pytest.raises(UserError, match=f"in use by a running training \\(pid {os.getpid()} on"):
        run_lock.acquire(tmp_path / "run")
    run_lock.release(tmp_path / "run", holder)
    assert not (tmp_path / "run" / run_lock.LOCK_NAME).exists()
    assert run_lock.live_holder(tmp_path / "run") is None


def test_a_lock_of_a_dead_process_is_stale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / run_lock.LOCK_NAME).write_text(json.dumps(
        {"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time() - 60}))
    assert run_lock.live_holder(tmp_path) is None
    with caplog.at_level(logging.WARNING, logger="tunelab.train"):
        holder = run_lock.acquire(tmp_path)
    assert holder.pid == os.getpid()
    assert "took over the stale lock" in caplog.text
    assert run_lock.read_holder(tmp_path) == holder


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path: Path) -> None:
    """Our own pid, but a start tick that is not ours: the process that wrote the lock is gone."""
    (tmp_path / run_lock.LOCK_NAME).write_text(json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "started": 0.0, "proc_start": "1"}))
    assert run_lock.live_holder(tmp_path) is None


def test_a_lock_of_another_host_is_refused_with_the_file_to_delete(tmp_path: Path) -> None:
    (tmp_path / run_lock.LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0.0}))
    with pytest.raises(UserError, match=f"on another host .*delete {tmp_path / run_lock.LOCK_NAME}"):
        run_lock.acquire(tmp_path)


def test_training_takes_the_lock_and_removes_it(tiny_qwen: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / run_lock.LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                                      "started": 0.0}))
    train_in_process(tiny_qwen, out, save_steps=100)
    assert (out / "trainer_log.jsonl").is_file()
    assert not (out / run_lock.LOCK_NAME).exists()  # released at the end, the stale one taken over first


def test_check_reports_a_busy_output_dir(tiny_qwen: Path, tmp_path: Path) -> None:
    from tunelab.cli.cmd_check import find_all_problems
    from tunelab.config.parser import parse_config

    out = tmp_path / "run"
    with run_lock.holding(out):
        problems = find_all_problems(parse_config(train_args(tiny_qwen, out)), rows=False)
    assert any(f"output_dir {out} is in use by a running training (pid {os.getpid()}" in p for p in problems)
    assert not any("in use" in p for p in find_all_problems(parse_config(train_args(tiny_qwen, out)), rows=False))


def test_a_second_train_into_a_busy_folder_exits_2_and_the_first_completes(tiny_qwen: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = train_args(tiny_qwen, out, max_steps=4, save_steps=2)
    marker = tmp_path / "marker"
    first = start_paused("step", 2, marker, args, seconds=300)  # holds the lock, paused in step 2
    try:
        holder = run_lock.live_holder(out)
        assert holder is not None and holder.pid == first.pid
        second = run_tunelab(args)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"output_dir {out} is in use by a running training (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        marker.with_name(marker.name + ".go").touch()
        assert first.wait(timeout=240) == 0, first.stderr.read()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert sorted(losses_by_step(out)) == [1, 2, 3, 4]  # the first run's lines only, each step once
    assert not (out / run_lock.LOCK_NAME).exists()
