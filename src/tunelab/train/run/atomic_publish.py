"""Checkpoints and the final model are written to a staging folder and renamed into place only when complete.

A run killed during a save (SIGKILL, power loss, a full disk) therefore never leaves a
`checkpoint-N` folder that looks complete but is not; resume ignores and reports the staging leftovers.

The final model and tokenizer follow the one publish rule of utils/publish.py: written to a staging
folder beside output_dir, listed in `tunelab_manifest.json` and renamed into place, the run's other
files (checkpoints, trainer_log.jsonl, the resolved config) carried over. A full disk, a kill or a
crash during the final save therefore leaves output_dir as it was, never a truncated `tokenizer.json`
or half a shard in it; every model load checks the manifest.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.utils.publish import fsync_dir, is_disk_full, staging_for, staging_path, write_manifest
from tunelab.utils.publish import publish as publish_folder

logger = logging.getLogger("tunelab.train")

STAGING_DIR = ".tunelab-staging"


def staging_root(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / STAGING_DIR


def publish(staged: Path, final: Path) -> None:
    """Move a completely written checkpoint into place with one rename."""
    if final.exists():
        shutil.rmtree(final)  # the same step saved again (e.g. a run restarted with overwrite_output_dir)
    os.replace(staged, final)
    fsync_dir(final.parent)


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
    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    if is_disk_full(error):
        reason = "No space left on device (the disk is full)"
    else:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    where = getattr(error, "filename", None)
    return UserError(f"saving checkpoint-{step} failed: {reason}{f', writing {where}' if where else ''}; the partial "
                     f"checkpoint was removed and {kept}. Free disk space or choose another output_dir, then resume "
                     "with resume_from_checkpoint: true.")


def save_final_model(trainer: Any, model: Any, tokenizer: Any, template: Any, output_dir: str,
                     pissa_init_dir: Path | None, processor: Any = None) -> None:
    """Save weights (or adapter) and tokenizer atomically into output_dir; one message on a full disk."""
    from tunelab.train.run.outputs import save_tokenizer

    final = Path(output_dir)
    args = trainer.args
    staging = staging_path(final)  # every rank computes it; rank 0 creates it
    try:
        if args.should_save:
            staging = staging_for(final)
        if args.world_size > 1:
            trainer.accelerator.wait_for_everyone()
        if pissa_init_dir is not None:
            if args.should_save:
                model.save_pretrained(staging, path_initial_model_for_weight_conversion=str(pissa_init_dir))
                logger.info("pissa_convert: saved the adapter as a plain LoRA adapter")
        else:
            trainer.save_model(str(staging))  # every rank: DeepSpeed / FSDP gather the weights
        if args.world_size > 1:
            trainer.accelerator.wait_for_everyone()
        if args.should_save:
            save_tokenizer(tokenizer, template, str(staging), processor)
            write_manifest(staging, "model")
            publish_folder(staging, final, keep_nested_manifests=True)
    except Exception as error:
        if not (isinstance(error, OSError) or is_disk_full(error)):
            raise
        if args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        raise final_save_failed(error, final, trainer.state.global_step) from None
    logger.info("final model saved to %s (listed in its tunelab_manifest.json)", final)


def final_save_failed(error: BaseException, final: Path, step: int) -> UserError:
    reason = ("No space left on device (the disk is full)" if is_disk_full(error)
              else getattr(error, "strerror", None) or str(error) or type(error).__name__)
    found = sorted((p for p in final.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
                    and p.name.split("-", 1)[1].isdigit()), key=lambda p: int(p.name.split("-", 1)[1]))
    if found and found[-1].name == f"checkpoint-{step}":
        resume = (f"the checkpoint of the last step, {found[-1]}, is kept: free disk space and run again with "
                  "resume_from_checkpoint: true to save the final model from it (no step is trained again)")
    elif found:
        resume = (f"the latest checkpoint is {found[-1]}: free disk space and run again with "
                  "resume_from_checkpoint: true to train the steps after it and save the final model")
    else:
        resume = "no checkpoint exists, so the training has to run again once space is free"
    return UserError(f"saving the final model to {final} failed: {reason}. Nothing of it was written there (the "
                     f"half-written copy was removed); {resume}.")
