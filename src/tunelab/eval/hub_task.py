"""Task data from the Hugging Face hub through `datasets`, for users online without a local copy.

Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no connection) the user gets one message that
names the task and the local layout that would work instead, never a stack of network errors.
"""

from __future__ import annotations

import os
from typing import Any

from tunelab.errors import UserError, require_package
from tunelab.eval.questions import Question, Subject, question_from_mapping

# the short names users write in `task` -> the hub repository holding one config per subject
HUB_TASKS: dict[str, str] = {"mmlu": "cais/mmlu", "ceval": "ceval/ceval-exam", "cmmlu": "haonan-li/cmmlu"}
HUB_SPLITS: dict[str, tuple[str, ...]] = {"dev": ("dev", "train"), "val": ("validation", "val"), "test": ("test",)}
_NOT_SUBJECTS = {"all", "auxiliary_train", "default"}


def is_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def offline_error(task: str, task_dir: str) -> UserError:
    return UserError(
        f"task '{task}': no folder '{os.path.join(task_dir, task)}' and the hub cannot be reached (offline). "
        f"Put the task's CSVs there (mapping.json plus data/dev, data/val, data/test as MMLU ships them; see docs/eval.md), "
        f"or set task_dir to the folder that holds '{task}', or run once online."
    )


class HubTask:
    """A task whose subjects are configs of one hub data set (`cais/mmlu`, `ceval/ceval-exam`, ...)."""

    def __init__(self, name: str, repo: str, task_dir: str, *, cache_dir: str | None = None,
                 token: str | None = None, download_mode: str = "reuse_dataset_if_exists",
                 subjects: list[Subject] | None = None) -> None:
        self.name, self.repo, self.task_dir = name, repo, task_dir
        self._kwargs: dict[str, Any] = {"cache_dir": cache_dir, "token": token, "download_mode": download_mode}
        self._subjects = subjects
        self._loaded: dict[str, Any] = {}

    @property
    def origin(self) -> str:
        return f"hub:{self.repo}"

    def _guard(self, action: Any) -> Any:
        if is_offline():
            raise offline_error(self.name, self.task_dir)
        require_package("datasets", f"loading task '{self.name}' from the hub")
        try:
            return action()
        except (ConnectionError, TimeoutError, OSError) as error:
            raise UserError(f"task '{self.name}': could not load '{self.repo}' from the hub: {error}. "
                            f"{offline_error(self.name, self.task_dir).message}") from None

    def subjects(self) -> list[Subject]:
        if self._subjects is None:
            import datasets

            names = self._guard(lambda: datasets.get_dataset_config_names(self.repo, token=self._kwargs["token"]))
            self._subjects = [Subject(n, n.replace("_", " "), "Other") for n in names if n not in _NOT_SUBJECTS]
        return self._subjects

    def questions(self, subject: str, split: str) -> list[Question] | None:
        if subject not in self._loaded:
            import datasets

            self._loaded[subject] = self._guard(lambda: datasets.load_dataset(self.repo, subject, **self._kwargs))
        data = self._loaded[subject]
        for name in HUB_SPLITS[split]:
            if name in data:
                return [question_from_mapping(row) for row in data[name]]
        return None
