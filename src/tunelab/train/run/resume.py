"""Which checkpoint a run resumes from, and the refusal to resume or overwrite silently.

A checkpoint is resumed only when every file its manifest lists is there with the size and sha256 it
was written with: a deleted `optimizer.pt` or a flipped byte in the weights would otherwise resume with
fresh optimizer state or damaged weights and no word. `overwrite_output_dir` removes the old run's
checkpoints at start, so a later `resume_from_checkpoint: true` can only find this run's.
"""

from __future__ import annotations

import logging
import re
import shutil
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
    from tunelab.utils.publish import recover

    out = Path(output_dir)
    recover(out, keep_nested_manifests=True)  # a final save killed between its two renames: the run folder comes back
    discard_staging(out)
    checkpoints = list_checkpoints(out)
    if resume_from_checkpoint is not None and str(resume_from_checkpoint).lower() in ("true", "1", "yes"):
        if not checkpoints:
            raise UserError(f"resume_from_checkpoint: true but {out} holds no complete checkpoint-* folder.")
        check_checkpoint_files(checkpoints[-1], earlier=checkpoints[:-1])
        logger.info("resuming from the latest checkpoint %s", checkpoints[-1])
        return str(checkpoints[-1])
    if resume_from_checkpoint is not None and str(resume_from_checkpoint).lower() not in ("false", "0", "no", ""):
        path = Path(resume_from_checkpoint)
        if not (path / "trainer_state.json").is_file():
            raise UserError(f"resume_from_checkpoint: {path} is not a complete checkpoint (no trainer_state.json).")
        number = _CHECKPOINT.match(path.name)
        earlier = [p for p in list_checkpoints(path.parent)
                   if number and int(_CHECKPOINT.match(p.name).group(1)) < int(number.group(1))]  # type: ignore[union-attr]
        check_checkpoint_files(path, earlier=earlier)
        logger.info("resuming from %s", path)
        return str(path)
    if checkpoints and not overwrite_output_dir:
        raise UserError(
            f"output_dir {out} already holds checkpoints (latest: {checkpoints[-1].name}). Choose one: "
            "resume_from_checkpoint: true to continue that run, or overwrite_output_dir: true to start afresh "
            "(or pick another output_dir)."
        )
    if checkpoints and overwrite_output_dir:
        remove_old_checkpoints(out)
    return None


def remove_old_checkpoints(out: Path) -> list[Path]:
    """overwrite_output_dir: delete the old run's checkpoint-* folders (complete or not), named in the log."""
    old = sorted(p for p in out.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name))
    for path in old:
        shutil.rmtree(path, ignore_errors=True)  # another rank of the same start may be removing it too
    if old:
        logger.warning("overwrite_output_dir: removed the %d checkpoints of the earlier run in %s (%s) before "
                       "starting afresh", len(old), out, ", ".join(p.name for p in old))
    return old


def check_checkpoint_files(checkpoint: Path, earlier: list[Path]) -> None:
    """Refuse a checkpoint whose files differ from its manifest (missing, resized, changed), naming them."""
    from tunelab.utils.publish import MANIFEST_NAME, folder_problems

    if not (checkpoint / MANIFEST_NAME).is_file():
        logger.warning("%s has no %s (written by another tool or an older tunelab): its files cannot be checked "
                       "before resuming", checkpoint, MANIFEST_NAME)
        return
    try:
        problems = folder_problems(checkpoint, hashes=True)
    except UserError as error:  # the manifest itself does not parse
        problems = [str(error)]
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        other = (f"resume from the earlier {earlier[-1]} (resume_from_checkpoint: {earlier[-1]})" if earlier
                 else "start afresh with overwrite_output_dir: true")
        raise UserError(f"cannot resume {checkpoint}: it is not as it was written ({listed}); resuming would start "
                        f"with fresh or damaged state. Restore the file, {other}, or delete the checkpoint.")
