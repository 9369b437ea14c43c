"""One training run per output folder: a lock file in the folder names the process that trains into it.

Two runs into one folder interleave their `trainer_log.jsonl` lines, overwrite each other's checkpoints
and leave a folder no resume check can trust, and nothing tells either of them. So `tunelab train` (rank 0
of a distributed run: one lock per run, not per process) creates `tunelab_train.lock` with O_EXCL before
it writes anything, and deletes it when it ends, however it ends. A second run finds a live holder and
stops with exit 2 before it loads anything; `tunelab check` and the board's Start report the same.

A lock whose process is gone (killed with SIGKILL, the machine rebooted) is stale: the next run takes it
over with a log line. "Gone" is decided on this host only: a dead pid, a zombie, or a pid reused by a
later process (its start tick in /proc differs from the one recorded). A lock written on another host
(a shared file system) cannot be checked from here, so it is refused with the file to delete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")

LOCK_NAME = "tunelab_train.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who trains into a folder: the process, the host it runs on, and since when (unix time)."""

    pid: int
    host: str
    started: float
    proc_start: str | None = None  # /proc/PID/stat start tick: tells the holder from a later process with its pid

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, since {since}"


def _proc_start(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None where /proc has no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return None


def is_alive(holder: LockHolder) -> bool:
    """Whether the holder still runs (on this host; a lock of another host counts as alive: see the docstring)."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _state(holder.pid) == "Z":
        return False  # exited, not yet reaped by its parent
    now_start = _proc_start(holder.pid)
    return holder.proc_start is None or now_start is None or now_start == holder.proc_start


def read_holder(output_dir: str | os.PathLike[str]) -> LockHolder | None:
    """The lock's record, or None when the folder has no lock (or one that cannot be read: stale)."""
    try:
        data = json.loads((Path(output_dir) / LOCK_NAME).read_text(encoding="utf-8"))
        return LockHolder(int(data["pid"]), str(data["host"]), float(data["started"]), data.get("proc_start"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_holder(output_dir: str | os.PathLike[str]) -> LockHolder | None:
    """The process training into `output_dir` now, or None when the folder is free (or its lock stale)."""
    holder = read_holder(output_dir)
    return holder if holder is not None and is_alive(holder) else None


def busy_message(output_dir: str | os.PathLike[str], holder: LockHolder) -> str:
    lock = Path(output_dir) / LOCK_NAME
    if holder.host != socket.gethostname():
        return (f"output_dir {output_dir} is in use by a training run on another host ({holder.describe()}). Wait "
                f"for it to finish or choose another output_dir; if that run is gone, delete {lock}.")
    return (f"output_dir {output_dir} is in use by a running training ({holder.describe()}). Wait for it to "
            "finish, stop it, or choose another output_dir.")


def _write_new(lock: Path, holder: LockHolder) -> bool:
    """Create the lock file only if there is none (O_EXCL: of two racing runs exactly one succeeds)."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(holder), handle)
    return True


def acquire(output_dir: str | os.PathLike[str]) -> LockHolder:
    """Take the folder's lock for this process, or raise a UserError naming the live holder."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    me = LockHolder(os.getpid(), socket.gethostname(), time.time(), _proc_start(os.getpid()))
    for _ in range(3):  # a stale lock moved away by a racing run between our two steps: try again
        if _write_new(lock, me):
            return me
        holder = read_holder(folder)
        if holder is not None and is_alive(holder):
            raise UserError(busy_message(folder, holder))
        aside = lock.with_name(f".{LOCK_NAME}.stale-{os.getpid()}")
        try:
            os.replace(lock, aside)  # only one of two runs taking over the same stale lock gets it
        except FileNotFoundError:
            continue
        aside.unlink(missing_ok=True)
        what = holder.describe() if holder is not None else "unreadable"
        logger.warning("output_dir %s: took over the stale lock of a run that is gone (%s)", folder, what)
    raise UserError(f"output_dir {folder}: could not take {lock} (other runs keep replacing it); start one run at a time.")


def release(output_dir: str | os.PathLike[str], holder: LockHolder) -> None:
    """Delete the lock if it is still this process's (never another run's that took over meanwhile)."""
    current = read_holder(output_dir)
    if current is not None and (current.pid, current.host, current.started) == (holder.pid, holder.host,
                                                                                  holder.started):
        (Path(output_dir) / LOCK_NAME).unlink(missing_ok=True)


@contextlib.contextmanager
def holding(output_dir: str | os.PathLike[str]) -> Iterator[LockHolder]:
    """The lock for the body's duration; released however the body ends (an exception, SIGTERM's Interrupted)."""
    holder = acquire(output_dir)
    try:
        yield holder
    finally:
        release(output_dir, holder)


def lock_problems(output_dir: str | None) -> list[str]:
    """`tunelab check`'s view: a live run in output_dir is a problem (nothing is created or taken)."""
    if not output_dir:
        return []
    holder = live_holder(output_dir)
    return [busy_message(output_dir, holder)] if holder is not None else []
