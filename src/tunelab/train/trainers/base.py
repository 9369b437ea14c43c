"""The transformers.Trainer subclass every tunelab stage builds on.

It adds what the stages share: an exact count of non-padding tokens seen (packed rows make the
stock counter wrong), LoRA+ learning rates, the tokenizer saved with its chat template, and
checkpoints that are atomic, listed in a manifest and stamped with the run's configuration and data
(run/resume.py), so that resuming can check them.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import Seq2SeqTrainer

from tunelab.config.resolved import Config
from tunelab.data.batching import TOKEN_COUNT_KEY
from tunelab.train.run.atomic_publish import publish, save_failed, staging_root
from tunelab.train.run.resume import list_checkpoints

logger = logging.getLogger("tunelab.train")


class TunelabTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer plus token accounting and LoRA+; stages subclass it for their loss."""

    def __init__(self, *args: Any, config: Config | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = config  # the resolved tunelab Config: stages read their own keys from it
        self.loraplus_lr_ratio = config.finetuning.loraplus_lr_ratio if config is not None else None
        self.loraplus_lr_embedding = config.finetuning.loraplus_lr_embedding if config is not None else 1e-6
        self.run_record: dict[str, Any] | None = None  # written into every checkpoint (run/resume.py)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Write the checkpoint into a staging folder, then rename it into place (see run/atomic_publish.py).

        Its run record and manifest are written last, once every rank has staged its files: a checkpoint
        without them was not finished. Any writer's disk-full error (not only OSError) is one message."""
        from transformers.trainer import rotate_checkpoints

        from tunelab.train.run.resume import write_run_record
        from tunelab.utils.publish import is_disk_full, write_manifest

        run_dir = self._get_output_dir(trial=trial)
        name = f"checkpoint-{self.state.global_step}"
        staged = staging_root(run_dir) / name
        previous = self.state.best_model_checkpoint or _latest_checkpoint(run_dir)
        self._staging_run_dir = str(staging_root(run_dir))
        try:
            super()._save_checkpoint(model, trial)
        except Exception as error:
            if not (isinstance(error, OSError) or is_disk_full(error)):
                raise
            _drop_staged(staged)  # give the space back; resume would ignore it anyway
            raise save_failed(self.state.global_step, error, previous) from None
        finally:
            self._staging_run_dir = None
        if self.args.world_size > 1:
            self.accelerator.wait_for_everyone()  # every rank's RNG state / ZeRO shards are staged before publishing
        if self.args.should_save:
            try:
                if self.run_record is not None:
                    write_run_record(staged, self.run_record)
                write_manifest(staged, "checkpoint")
            except OSError as error:
                _drop_staged(staged)
                raise save_failed(self.state.global_step, error, previous) from None
            publish(staged, Path(run_dir) / name)
            with contextlib.suppress(OSError):  # not empty: another rank's files, kept
                staging_root(run_dir).rmdir()
            best = self.state.best_model_checkpoint
            if best and str(staging_root(run_dir)) in best:
                self.state.best_model_checkpoint = best.replace(str(staging_root(run_dir)), str(run_dir))
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        if self.args.world_size > 1:
            self.accelerator.wait_for_everyone()

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        """Train no step past max_steps: resuming from the run's last checkpoint has nothing left to train.

        transformers checks max_steps only after a step, so a run resumed at its last (mid-epoch)
        checkpoint would train one step more than the uninterrupted run did."""
        if 0 < self.state.max_steps <= self.state.global_step:
            logger.warning("step %d already reached max_steps = %d: no step left to train; the checkpoint's weights "
                           "are the final model", self.state.global_step, self.state.max_steps)
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _get_output_dir(self, trial: Any) -> str:
        staging = getattr(self, "_staging_run_dir", None)
        return staging if staging else super()._get_output_dir(trial=trial)

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        tokens = inputs.pop(TOKEN_COUNT_KEY, None)
        if tokens is not None:
            self.add_tokens_seen(tokens.sum() if hasattr(tokens, "sum") else tokens)
        return super().training_step(model, inputs, num_items_in_batch)

    def add_tokens_seen(self, count: Any) -> None:
        """Add the non-padding tokens every process saw (under torchrun every process calls it at the same point)."""
        if self.accelerator.num_processes > 1:
            import torch

            count = self.accelerator.gather(torch.as_tensor(count, device=self.args.device).reshape(1)).sum()
        self.state.num_input_tokens_seen += int(count)

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None, **kwargs: Any) -> Any:
        inputs.pop(TOKEN_COUNT_KEY, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **kwargs)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None and self.loraplus_lr_ratio is not None:
            self.optimizer = self._loraplus_optimizer()
            return self.optimizer
        return super().create_optimizer(model) if model is not None else super().create_optimizer()

    def _loraplus_optimizer(self) -> Any:
        """LoRA+ (Hayou et al. 2024): B matrices learn `loraplus_lr_ratio` times faster than A."""
        from transformers import Trainer

        lr = self.args.learning_rate
        decay = self.args.weight_decay
        groups: dict[str, list[Any]] = {"a": [], "b": [], "embedding": [], "other": []}
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            if "lora_embedding" in name:
                groups["embedding"].append(param)
            elif "lora_B" in name or param.ndim == 1:
                groups["b" if "lora_B" in name else "other"].append(param)
            else:
                groups["a"].append(param)
        param_groups = [
            {"params": groups["a"], "lr": lr, "weight_decay": decay},
            {"params": groups["b"], "lr": lr * self.loraplus_lr_ratio, "weight_decay": decay},
            {"params": groups["embedding"], "lr": self.loraplus_lr_embedding, "weight_decay": decay},
            {"params": groups["other"], "lr": lr, "weight_decay": 0.0},
        ]
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
        optimizer_kwargs.pop("lr", None)
        logger.info("LoRA+: lora_B learning rate = %g (ratio %g)", lr * self.loraplus_lr_ratio, self.loraplus_lr_ratio)
        return optimizer_cls([g for g in param_groups if g["params"]], **optimizer_kwargs)


def _drop_staged(staged: Path) -> None:
    """Remove a checkpoint whose save failed, and the staging folder when nothing else is in it."""
    shutil.rmtree(staged, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: another rank's files, kept
        staged.parent.rmdir()


def _latest_checkpoint(run_dir: str) -> str | None:
    found = list_checkpoints(Path(run_dir))
    return str(found[-1]) if found else None
