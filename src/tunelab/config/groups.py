"""The registry of argument groups: which dataclass holds which keys, in the order `check` prints them."""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigField:
    """One config key as one group declares it."""

    group: str
    name: str
    hint: Any
    default: Any
    help: str


def group_classes() -> dict[str, type]:
    """Group name → dataclass. The training group imports transformers, so it is loaded on demand."""
    from tunelab.config.data_args import DataArguments
    from tunelab.config.evaluation_args import EvaluationArguments
    from tunelab.config.export_args import ExportArguments
    from tunelab.config.finetuning_args import FinetuningArguments
    from tunelab.config.generating_args import GeneratingArguments
    from tunelab.config.model_args import ModelArguments
    from tunelab.config.training_args import TrainingArguments

    return {
        "model": ModelArguments,
        "data": DataArguments,
        "finetuning": FinetuningArguments,
        "training": TrainingArguments,
        "generating": GeneratingArguments,
        "export": ExportArguments,
        "evaluation": EvaluationArguments,
    }


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


@functools.lru_cache(maxsize=1)
def all_fields() -> dict[str, tuple[ConfigField, ...]]:
    """Key → its declarations (a key such as `seed` may live in two groups; a value sets both)."""
    table: dict[str, list[ConfigField]] = {}
    for group, cls in group_classes().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init or f.name.startswith("_"):
                continue
            table.setdefault(f.name, []).append(
                ConfigField(group, f.name, hints.get(f.name, Any), _default_of(f), f.metadata.get("help", ""))
            )
    return {k: tuple(v) for k, v in table.items()}
