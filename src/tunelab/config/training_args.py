"""transformers' `Seq2SeqTrainingArguments` plus the few keys the anchor's users still pass that
transformers 5 dropped (`overwrite_output_dir`, `logging_dir`), so their configs keep working."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import Seq2SeqTrainingArguments


@dataclass
class TrainingArguments(Seq2SeqTrainingArguments):
    """Every `TrainingArguments` key of transformers, with its meaning and default."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start afresh even if output_dir holds checkpoints (otherwise tunelab asks you to choose)."},
    )
    max_nonfinite_steps: int = field(
        default=10,
        metadata={"help": "tunelab: optimizer steps with a non-finite loss or gradient are skipped; stop after this many."},
    )
    logging_dir: str | None = field(
        default=None, metadata={"help": "Folder for TensorBoard event files. Default: output_dir/runs."}
    )
