"""Keys of `tunelab eval` (MMLU / CMMLU / C-Eval layout), with the anchor's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EvaluationArguments:
    """Benchmark task, few-shot setting and where results go."""

    task: str | None = field(default=None, metadata={"help": "Benchmark task, e.g. mmlu_test, ceval_validation."})
    task_dir: str = field(default="evaluation", metadata={"help": "Folder holding the benchmark tasks."})
    batch_size: int = field(default=4, metadata={"help": "Evaluation batch size."})
    seed: int = field(default=42, metadata={"help": "Random seed (also the training seed when both are set)."})
    lang: Literal["en", "zh"] = field(default="en", metadata={"help": "Language of the prompts."})
    n_shot: int = field(default=5, metadata={"help": "Few-shot examples per question."})
    save_dir: str | None = field(default=None, metadata={"help": "Folder to save the results to."})
    download_mode: str = field(default="reuse_dataset_if_exists", metadata={"help": "How hub task data is downloaded."})
