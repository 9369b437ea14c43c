"""Board jobs: launched detached, read back from files, aborted with their whole process tree."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.webui import runs
from tunelab.webui.i18n import texts
from tunelab.webui.progress import hms, progress_markdown, progress_of
from tunelab.webui.yaml_config import build_config

TEXTS = texts("en")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    return runs.is_alive(pid)


def test_abort_kills_the_whole_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that starts a grandchild (as dataloader workers or torchrun do): nothing survives abort."""
    script = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);" \
             " open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(300)"
    pid_file = tmp_path / "grandchild.pid"
    monkeypatch.setattr(runs, "job_argv", lambda kind, path: [sys.executable, "-c", script, str(pid_file)])
    info = runs.launch("train", {"output_dir": str(tmp_path)}, tmp_path / "run")
    _wait(pid_file.exists, 20, "the grandchild")
    grandchild = int(pid_file.read_text())
    members = runs.group_members(info.pgid)
    assert info.pid in members and grandchild in members and len(members) == 3  # wrapper, job, grandchild
    assert runs.read_run(info.run_dir).status == "running"

    left = runs.abort(info.run_dir, grace_seconds=0.5)  # the sleeping job ignores nothing: SIGTERM suffices
    assert left == [] and runs.group_members(info.pgid) == []
    assert not _alive(grandchild) and not _alive(info.pid)
    record = runs.read_run(info.run_dir)
    assert record.status == "aborted"
    registry = json.loads((Path(info.run_dir) / runs.RUN_FILE).read_text())
    assert registry["aborted"] is True and registry["pid"] == info.pid and registry["kind"] == "train"


def test_abort_escalates_to_sigkill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); open(sys.argv[1], 'w').write('x');" \
             " time.sleep(300)"
    ready = tmp_path / "ready"
    monkeypatch.setattr(runs, "job_argv", lambda kind, path: [sys.executable, "-c", script, str(ready)])
    info = runs.launch("train", {}, tmp_path / "run")
    _wait(ready.exists, 20, "the job")
    start = time.monotonic()
    assert runs.abort(info.run_dir, grace_seconds=0.5) == []
    assert time.monotonic() - start < 5 and runs.group_members(info.pgid) == []
    assert runs.read_run(info.run_dir).status == "aborted"


def test_a_real_training_run_is_aborted_mid_run(tmp_path: Path) -> None:
    """`tunelab train` on the tiny model: aborted after its first logged steps, no process remains, and
    the SIGTERM lets the trainer write a checkpoint first."""
    out = tmp_path / "saves" / "run"
    config = build_config("train", {"dataset": ["identity"], "finetuning_type": "full", "max_steps": 2000,
                                    "logging_steps": 1, "save_steps": 100000, "output_dir": str(out),
                                    "cutoff_len": 128, "per_device_train_batch_size": 2,
                                    "gradient_accumulation_steps": 1, "learning_rate": 1e-3})
    info = runs.launch("train", config, out, env={"TOKENIZERS_PARALLELISM": "false"})
    _wait(lambda: len(runs.read_trainer_log(out)) >= 2, 90, f"logged steps ({runs.tail(out / runs.LOG_FILE)})")
    assert [r.run_dir for r in runs.find_runs(tmp_path / "saves")] == [str(out)]
    assert runs.find_runs(tmp_path / "saves")[0].status == "running"
    assert runs.abort(out, grace_seconds=20) == []
    assert runs.group_members(info.pgid) == [] and not _alive(info.pid)
    ended = runs.read_run(out)
    assert ended.status == "aborted" and ended.end_time is not None  # the wrapper recorded the end
    assert any(p.name.startswith("checkpoint-") for p in out.iterdir())
    rows = runs.read_trainer_log(out)
    assert rows[-1]["total_steps"] == 2000 and 2 <= rows[-1]["step"] < 2000


def test_finished_and_lost_runs_read_from_files(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    record = {"run_dir": str(run), "kind": "train", "pid": 2**22 + 12345, "pgid": 2**22 + 12345,
              "start_time": 1.0, "command": "tunelab train x.yaml", "yaml": "x.yaml"}
    (run / runs.RUN_FILE).write_text(json.dumps(record))
    assert runs.read_run(run).status == "lost"  # no such process and no exit record
    (run / "tunelab_run.exit.json").write_text(json.dumps({"exit_code": 0, "end_time": 2.0}))
    assert runs.read_run(run).status == "finished"
    (run / "tunelab_run.exit.json").write_text(json.dumps({"exit_code": 2, "end_time": 2.0}))
    assert runs.read_run(run).status == "failed" and runs.read_run(run).exit_code == 2
    assert runs.read_run(tmp_path / "nothing") is None
    lines = [{"step": s, "total_steps": 4, "loss": 2.0 / s, "elapsed_seconds": s, "remaining_seconds": 4 - s,
              "tokens_per_second": 1500.0, "epoch": s / 4} for s in (1, 2)]
    (run / runs.TRAINER_LOG).write_text("\n".join(json.dumps(x) for x in lines) + '\n{"step": 3, "lo')
    rows = runs.read_trainer_log(run)
    assert [r["step"] for r in rows] == [1, 2]  # the half-written line is skipped
    progress = progress_of(rows, "running")
    assert (progress.step, progress.total, progress.percent, progress.loss) == (2, 4, 50.0, 1.0)
    text = progress_markdown(runs.read_run(run), rows, TEXTS)
    assert "step 2/4 (50.0%)" in text and "00:02 < 00:02" in text and "1,500 tokens/s" in text
    assert hms(3725) == "1:02:05" and hms(None) == "--:--"
    assert os.path.basename(runs.read_run(run).run_dir) == "r"


def test_tail_keeps_the_last_state_of_progress_bars(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("a\nb\n 10%|#\r 50%|##\r100%|###\nc\n")
    assert runs.tail(log, lines=2) == "100%|###\nc"
