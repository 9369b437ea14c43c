"""A multiple-choice benchmark run, top to bottom: task data → prompts → letter scores → accuracy.

`evaluate_task` takes a loaded model so tests (and the web UI) can pass any model; `run_benchmark`
is what `tunelab eval cfg.yaml` calls with the config's model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config
from tunelab.errors import UserError
from tunelab.eval.accuracy import Scores, SubjectResult, aggregate, format_table, save_results
from tunelab.eval.fewshot_template import encode_messages
from tunelab.eval.prompts import build_messages, get_style, select_shots
from tunelab.eval.questions import LETTERS
from tunelab.eval.scoring import letter_token_ids, score_prompts
from tunelab.eval.tasks import TaskSource, parse_task

logger = logging.getLogger("tunelab.eval")


@dataclass(frozen=True)
class BenchmarkSettings:
    """The EvaluationArguments a benchmark run reads."""

    split: str = "test"
    lang: str = "en"
    n_shot: int = 5
    batch_size: int = 4
    seed: int = 42

    @classmethod
    def from_config(cls, evaluation: Any, split: str) -> BenchmarkSettings:
        return cls(split, evaluation.lang, int(evaluation.n_shot), int(evaluation.batch_size), int(evaluation.seed))


@dataclass
class BenchmarkRun:
    """Predictions per subject and their accuracies."""

    results: list[SubjectResult]
    scores: Scores

    def table(self) -> str:
        return format_table(self.results, self.scores)


def encode_subject_prompts(task: TaskSource, subject: Any, settings: BenchmarkSettings, tokenizer: Any,
                           template: Any) -> tuple[list[list[int]], list[Any]]:
    """Token ids of every question's prompt in one subject, and the questions."""
    questions = task.questions(subject.key, settings.split)
    if questions is None:
        raise UserError(f"task '{task.name}': subject '{subject.key}' has no {settings.split} split in {task.origin}.")
    dev = (task.questions(subject.key, "dev") or []) if settings.n_shot > 0 else []
    if settings.n_shot > 0 and not dev:
        logger.warning("subject %s has no dev split: asking 0-shot", subject.key)
    shots = select_shots(dev, settings.n_shot, settings.seed)
    style = get_style(settings.lang)
    prompts = [encode_messages(tokenizer, template, build_messages(q, shots, subject.name, style)) for q in questions]
    return prompts, questions


def evaluate_task(task: TaskSource, model: Any, tokenizer: Any, template: Any, settings: BenchmarkSettings) -> BenchmarkRun:
    """Ask every question of every subject; accuracy per subject, category and overall."""
    subjects = task.subjects()
    if not subjects:
        raise UserError(f"task '{task.name}': no subjects found in {task.origin}.")
    letter_ids = letter_token_ids(tokenizer, LETTERS)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results = []
    for number, subject in enumerate(subjects, start=1):
        prompts, questions = encode_subject_prompts(task, subject, settings, tokenizer, template)
        picks = score_prompts(model, prompts, [q.letters for q in questions], letter_ids,
                              pad_id=pad_id, batch_size=settings.batch_size)
        results.append(SubjectResult(subject, [p for p, _ in picks], [q.answer for q in questions],
                                     [probs for _, probs in picks]))
        logger.info("[%d/%d] %s: %d questions", number, len(subjects), subject.name, len(questions))
    return BenchmarkRun(results, aggregate(results))


def run_benchmark(config: Config) -> BenchmarkRun:
    """`tunelab eval` with `task` set: load the task and the model, evaluate, print and save."""
    import transformers

    from tunelab.eval.model_setup import load_eval_model
    from tunelab.eval.tasks import open_task

    evaluation = config.evaluation
    name = parse_task(evaluation.task)
    save_dir = evaluation.save_dir
    if save_dir and Path(save_dir).is_dir() and any(Path(save_dir).iterdir()):
        raise UserError(f"save_dir: '{save_dir}' already holds files; choose a new folder (results are never overwritten).")
    task = open_task(name.name, evaluation.task_dir, cache_dir=config.model.cache_dir, token=config.model.hf_hub_token,
                     download_mode=evaluation.download_mode)
    settings = BenchmarkSettings.from_config(evaluation, name.split)
    transformers.set_seed(settings.seed)
    loaded = load_eval_model(config)
    run = evaluate_task(task, loaded.model, loaded.tokenizer, loaded.template, settings)
    print(run.table())
    if save_dir:
        info = {"task": evaluation.task, "source": task.origin, "split": settings.split, "lang": settings.lang,
                "n_shot": settings.n_shot, "seed": settings.seed, "model": loaded.model_path,
                "adapter": config.model.adapter_name_or_path, "template": getattr(loaded.template, "name", None)}
        folder = save_results(save_dir, run.results, run.scores, info)
        print(f"results saved to {folder} (scores.json, results.json, results.log)")
    return run
