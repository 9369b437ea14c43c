"""Saving and resuming a trainer whose model carries a value head (stages rm and ppo).

The language model is saved exactly as for sft (adapter or model folder, no head keys), and the head
goes beside it as `value_head.safetensors`, in the final folder and in every checkpoint. Stages add
their own state through `_save_extra` / `_load_extra`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tunelab.model.value_head import (
    PREFIX,
    VALUE_HEAD_FILE,
    attach_value_head,
    detach_value_head,
    load_value_head,
    save_value_head,
)

logger = logging.getLogger("tunelab.train")


class ValueHeadCheckpointMixin:
    """Mix into a `transformers.Trainer` subclass whose `self.model` has a value head attached."""

    @contextlib.contextmanager
    def _without_head(self) -> Iterator[Any]:
        head = detach_value_head(self.model)
        try:
            yield head
        finally:
            if head is not None:
                attach_value_head(self.model, head)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if state_dict is not None:  # DeepSpeed / FSDP gathered state: the head's keys leave it
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(PREFIX)}
        with self._without_head() as head:
            super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save and head is not None:
            logger.info("value head saved to %s", save_value_head(head, output_dir))
            self._save_extra(Path(output_dir))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        with self._without_head() as head:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = Path(resume_from_checkpoint)
        if head is not None and (path / VALUE_HEAD_FILE).is_file():
            with torch.no_grad():
                head.load_state_dict(load_value_head(path / VALUE_HEAD_FILE).state_dict())
            logger.info("value head restored from %s", path / VALUE_HEAD_FILE)
        self._load_extra(path)

    def _save_extra(self, output_dir: Path) -> None:
        """Stage-specific state written next to the head (nothing by default)."""

    def _load_extra(self, checkpoint: Path) -> None:
        """Stage-specific state read back on resume (nothing by default)."""
