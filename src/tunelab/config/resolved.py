"""The resolved configuration: one object per argument group, what the user set, what was derived."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.config.data_args import DataArguments
from tunelab.config.evaluation_args import EvaluationArguments
from tunelab.config.export_args import ExportArguments
from tunelab.config.finetuning_args import FinetuningArguments
from tunelab.config.generating_args import GeneratingArguments
from tunelab.config.model_args import ModelArguments

if TYPE_CHECKING:
    from tunelab.config.training_args import TrainingArguments


@dataclass
class Config:
    """Everything one command needs, typed and validated; `explicit` holds the keys the user wrote."""

    model: ModelArguments
    data: DataArguments
    finetuning: FinetuningArguments
    generating: GeneratingArguments
    export: ExportArguments
    evaluation: EvaluationArguments
    training_values: dict[str, Any]
    explicit: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key -> (value, why)
    source_file: str | None = None
    _training: TrainingArguments | None = field(default=None, repr=False)

    def group(self, name: str) -> Any:
        return getattr(self, name)

    @property
    def training(self) -> TrainingArguments:
        """transformers' TrainingArguments, built on first use (it imports transformers)."""
        if self._training is None:
            from tunelab.config.training_build import build_training_arguments

            self._training = build_training_arguments(self.training_values)
        return self._training

    def rerunnable_values(self) -> dict[str, Any]:
        """The keys the user set plus every derived value: `tunelab train` on this mapping does the same run."""
        values = dict(self.explicit)
        for key, (value, _why) in self.derived.items():
            values[key] = value
        return {k: _plain(v) for k, v in values.items()}

    def group_values(self, name: str) -> dict[str, Any]:
        if name == "training":
            return dict(self.training_values)
        return {f.name: getattr(self.group(name), f.name) for f in dataclasses.fields(self.group(name))}


def _plain(value: Any) -> Any:
    import enum

    if isinstance(value, enum.Enum):
        return value.value
    return value
