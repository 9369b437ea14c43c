"""Which checkpoint a run resumes from, and the refusal to resume or overwrite silently."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a checkpoint is complete when its trainer_state.json exists)."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    complete = [p for p in found if (p / "trainer_state.json").is_file()]
    for partial in sorted(set(found) - set(complete)):
        logger.warning("ignoring incomplete checkpoint %s (no trainer_state.json)", partial)
    return sorted(complete, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))  # type: ignore[union-attr]


def resolve_resume(output_dir: str, resume_from_checkpoint: str | None, overwrite_output_dir: bool) -> str | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to pick for the user."""
    from tunelab.train.run.atomic_publish import discard_staging

    out = Path(output_dir)
    discard_staging(out)
    checkpoints = list_checkpoints(out)
    if resume_from_checkpoint is not None and str(resume_from_checkpoint).lower() in ("true", "1", "yes"):
        if not checkpoints:
            raise UserError(f"resume_from_checkpoint: true but {out} holds no complete checkpoint-* folder.")
        logger.info("resuming from the latest checkpoint %s", checkpoints[-1])
        return str(checkpoints[-1])
    if resume_from_checkpoint is not None and str(resume_from_checkpoint).lower() not in ("false", "0", "no", ""):
        path = Path(resume_from_checkpoint)
        if not (path / "trainer_state.json").is_file():
            raise UserError(f"resume_from_checkpoint: {path} is not a complete checkpoint (no trainer_state.json).")
        logger.info("resuming from %s", path)
        return str(path)
    if checkpoints and not overwrite_output_dir:
        raise UserError(
            f"output_dir {out} already holds checkpoints (latest: {checkpoints[-1].name}). Choose one: "
            "resume_from_checkpoint: true to continue that run, or overwrite_output_dir: true to start afresh "
            "(or pick another output_dir)."
        )
    if checkpoints and overwrite_output_dir:
        logger.info("overwrite_output_dir: starting afresh in %s; its old checkpoints stay until replaced", out)
    return None
