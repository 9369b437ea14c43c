"""Checkpoints are written to a staging folder and renamed into place only when complete.

A run killed during a save (SIGKILL, power loss, a full disk) therefore never leaves a
`checkpoint-N` folder that looks complete but is not; resume ignores and reports the staging leftovers.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")

STAGING_DIR = ".tunelab-staging"


def staging_root(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / STAGING_DIR


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(staged: Path, final: Path) -> None:
    """Move a completely written checkpoint into place with one rename."""
    if final.exists():
        shutil.rmtree(final)  # the same step saved again (e.g. a run restarted with overwrite_output_dir)
    os.replace(staged, final)
    _fsync_dir(final.parent)


def discard_staging(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove partial checkpoints left by a killed run; return what was removed (for the log)."""
    root = staging_root(run_dir)
    if not root.is_dir():
        return []
    leftovers = sorted(root.iterdir())
    for partial in leftovers:
        logger.warning("ignoring the partial checkpoint %s left by an interrupted save", partial)
    shutil.rmtree(root, ignore_errors=True)
    return leftovers


def save_failed(step: int, error: BaseException, previous: str | None) -> UserError:
    """One message for a checkpoint that could not be written: an OSError, or any writer's disk-full error
    (safetensors, torch and tokenizers raise their own types with the ENOSPC text inside)."""
    from tunelab.utils.publish import is_disk_full

    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    if is_disk_full(error):
        reason = "No space left on device (the disk is full)"
    else:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    where = getattr(error, "filename", None)
    return UserError(f"saving checkpoint-{step} failed: {reason}{f', writing {where}' if where else ''}; the partial "
                     f"checkpoint was removed and {kept}. Free disk space or choose another output_dir, then resume "
                     "with resume_from_checkpoint: true.")
