"""Board jobs as separate processes whose state lives in files: launch, find, read, abort.

A job (train, eval, export) runs `tunelab <command> job.yaml` in its own session, so closing or
reloading the page never touches it and Abort can signal the whole process tree. The board writes
`tunelab_run.json` (kind, pid, process group, start time, command) into the run folder when it
launches; the job's wrapper writes `tunelab_run.exit.json` when it ends; training writes
`trainer_log.jsonl`. Everything the page shows is read back from these files, so a board started
later reattaches to running and finished runs alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab.webui.child import EXIT_FILE
from tunelab.webui.yaml_config import command_line, write_yaml

RUN_FILE = "tunelab_run.json"
LOG_FILE = "tunelab_run.log"
TRAINER_LOG = "trainer_log.jsonl"

# Popen objects of jobs this process started and not yet reaped. Each has a thread waiting on it, so a
# finished job is reaped at once (never left a zombie under the board), whether or not a page is open.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class RunInfo:
    """The registry record of one job, plus its status as read now."""

    run_dir: str
    kind: str
    pid: int
    pgid: int
    start_time: float
    command: str
    yaml: str
    proc_start: str | None = None  # /proc start tick: tells our pid from a later process reusing it
    aborted: bool = False
    status: str = "running"  # running | finished | failed | aborted | lost
    exit_code: int | None = None
    end_time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.run_dir).name


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_tick(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat and len(stat) > 19 else None


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)


def _wait_and_forget(process: subprocess.Popen[bytes]) -> None:
    process.wait()
    _CHILDREN.pop(process.pid, None)


def is_alive(pid: int, proc_start: str | None = None) -> bool:
    """True while the process runs (a zombie or a pid reused by another process counts as ended)."""
    _reap(pid)
    stat = _proc_stat(pid)
    if stat is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc (macOS): ask the kernel
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    if stat[0] in ("Z", "X"):
        return False
    return proc_start is None or _start_tick(pid) == proc_start


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat and len(stat) > 2 and stat[2] == str(pgid) and stat[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(dict(data), indent=1), encoding="utf-8")
    os.replace(tmp, path)


def job_yaml_name(kind: str) -> str:
    """The file a job's YAML is written to in its run folder (Preview names it before it exists)."""
    return f"tunelab_webui_{kind}.yaml"


def job_argv(kind: str, yaml_path: Path) -> list[str]:
    """The job's own command: this Python, so the job runs the same tunelab as the board."""
    return [sys.executable, "-m", "tunelab.cli.main", kind, str(yaml_path)]


def launch(kind: str, config: Mapping[str, Any], run_dir: str | Path, *, env: Mapping[str, str] | None = None,
           extra: Mapping[str, Any] | None = None) -> RunInfo:
    """Write the job's YAML and registry into run_dir and start `tunelab <kind> job.yaml` detached."""
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (EXIT_FILE, RUN_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    yaml_path = write_yaml(config, run_dir / job_yaml_name(kind))
    argv = [sys.executable, "-m", "tunelab.webui.child", str(run_dir), "--", *job_argv(kind, yaml_path)]
    with open(run_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, **(env or {})})
    _CHILDREN[process.pid] = process
    threading.Thread(target=_wait_and_forget, args=(process,), name=f"reap-{process.pid}", daemon=True).start()
    info = RunInfo(run_dir=str(run_dir), kind=kind, pid=process.pid, pgid=process.pid, start_time=time.time(),
                   command=command_line(kind, yaml_path), yaml=str(yaml_path), proc_start=_start_tick(process.pid),
                   extra=dict(extra or {}))
    record = asdict(info)
    for key in ("status", "exit_code", "end_time"):
        record.pop(key)
    _write_json(run_dir / RUN_FILE, record)
    return info


def read_run(run_dir: str | Path) -> RunInfo | None:
    """The registry of one run folder with its status now, or None when the folder has none."""
    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        info = RunInfo(**{k: v for k, v in record.items() if k in RunInfo.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None
    try:
        ended = json.loads((run_dir / EXIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        ended = None
    if ended is not None:
        info.exit_code, info.end_time = ended.get("exit_code"), ended.get("end_time")
        info.status = "aborted" if info.aborted else ("finished" if info.exit_code == 0 else "failed")
    elif is_alive(info.pid, info.proc_start):
        info.status = "running"
    else:
        info.status = "aborted" if info.aborted else "lost"
    return info


def find_runs(root: str | Path, kind: str | None = None, max_depth: int = 4) -> list[RunInfo]:
    """Every run registered under root (newest first): how a reopened board finds its jobs."""
    root = Path(root)
    found: list[RunInfo] = []
    if not root.is_dir():
        return found
    for depth in range(max_depth + 1):
        for path in root.glob("/".join(["*"] * depth + [RUN_FILE])):
            info = read_run(path.parent)
            if info is not None and (kind is None or info.kind == kind):
                found.append(info)
    return sorted(found, key=lambda r: r.start_time, reverse=True)


def abort(run_dir: str | Path, grace_seconds: float = 10.0) -> list[int]:
    """Stop a job's whole process tree: SIGTERM (training saves a checkpoint and stops), then SIGKILL
    after `grace_seconds`. Returns the pids still alive afterwards (empty when all are gone)."""
    info = read_run(run_dir)
    if info is None:
        return []
    path = Path(run_dir) / RUN_FILE
    record = json.loads(path.read_text(encoding="utf-8"))
    record["aborted"] = True
    _write_json(path, record)
    if not is_alive(info.pid, info.proc_start) and not group_members(info.pgid):
        return []
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(info.pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(info.pid)
            if not group_members(info.pgid):
                break
            time.sleep(0.1)
        if not group_members(info.pgid):
            break
    _reap(info.pid)
    return group_members(info.pgid)


def read_trainer_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lines of trainer_log.jsonl written so far (a half-written last line is skipped)."""
    path = Path(run_dir) / TRAINER_LOG
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def tail(path: str | Path, lines: int = 20, max_bytes: int = 64_000) -> str:
    """The last lines of a log file, read from its end (logs of long runs grow large)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # tqdm redraws with carriage returns: keep the last state of each line
    cleaned = [part.split("\r")[-1] for part in data.splitlines()]
    return "\n".join(line for line in cleaned[-lines:])
