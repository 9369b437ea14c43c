"""From `task: mmlu_test` and `task_dir` to the questions: a local folder, the bundled sample, or the hub.

The task name ends with the split, as in the anchor (`mmlu_test`, `ceval_validation`); the name
itself may hold underscores (`tunelab_sample_zh_test`), so the split is what follows the last one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from tunelab.errors import UserError
from tunelab.eval.hub_task import HUB_TASKS, HubTask, is_offline, offline_error
from tunelab.eval.local_task import LocalTask
from tunelab.eval.questions import Question, Subject

logger = logging.getLogger("tunelab.eval")

DEFAULT_TASK_DIR = "evaluation"
SPLIT_NAMES: dict[str, str] = {"test": "test", "validation": "val", "val": "val", "dev": "dev", "train": "dev"}


class TaskSource(Protocol):
    """What the benchmark runner needs from task data, wherever it lives."""

    name: str

    @property
    def origin(self) -> str: ...

    def subjects(self) -> list[Subject]: ...

    def questions(self, subject: str, split: str) -> list[Question] | None: ...


@dataclass(frozen=True)
class TaskName:
    """`mmlu_test` -> name `mmlu`, split `test` (dev / val / test, the folder names)."""

    name: str
    split: str


def parse_task(task: str | None) -> TaskName:
    if not task:
        raise UserError("task is not set; e.g. task: mmlu_test (or tunelab_sample_test, the bundled sample).")
    name, _, split = task.rpartition("_")
    if not name or split not in SPLIT_NAMES:
        raise UserError(
            f"task '{task}': the name must end with the split, one of _test, _validation, _dev "
            f"(e.g. mmlu_test, ceval_validation)."
        )
    return TaskName(name, SPLIT_NAMES[split])


def bundled_task_dir() -> Path:
    """The sample tasks shipped inside the package (tunelab_sample, tunelab_sample_zh)."""
    return Path(str(resources.files("tunelab") / "resources" / "evaluation"))


def bundled_task_names() -> list[str]:
    return sorted(p.name for p in bundled_task_dir().iterdir() if (p / "mapping.json").is_file())


def open_task(name: str, task_dir: str = DEFAULT_TASK_DIR, *, cache_dir: str | None = None,
              token: str | None = None, download_mode: str = "reuse_dataset_if_exists") -> TaskSource:
    """`<task_dir>/<name>` if it exists; the bundled sample when `task_dir` is the default and absent;
    else the hub (the known benchmarks by short name, or a hub id as the task name)."""
    local = Path(task_dir) / name
    if local.is_dir():
        return LocalTask(local, name)
    bundled = bundled_task_dir() / name
    if task_dir == DEFAULT_TASK_DIR and bundled.is_dir():
        logger.info("task_dir: ./%s/%s does not exist; using tunelab's bundled task in %s", task_dir, name, bundled)
        return LocalTask(bundled, name)
    repo = HUB_TASKS.get(name)
    if repo is None:
        known = sorted({*bundled_task_names(), *HUB_TASKS})
        raise UserError(
            f"task '{name}': no folder '{local}'. Known without a folder: {', '.join(known)}; "
            f"for another benchmark put its CSVs in '{local}' (see docs/eval.md)."
        )
    if is_offline():
        raise offline_error(name, task_dir)
    return HubTask(name, repo, task_dir, cache_dir=cache_dir, token=token, download_mode=download_mode)
