"""Builds transformers' TrainingArguments, turning its ValueErrors into UserErrors that name the key."""

from __future__ import annotations

from typing import Any

from tunelab.errors import UserError


def build_training_arguments(values: dict[str, Any]) -> Any:
    from tunelab.config.training_args import TrainingArguments

    try:
        return TrainingArguments(**values)
    except (ValueError, ImportError) as error:
        raise UserError(f"training arguments: {error}") from None
