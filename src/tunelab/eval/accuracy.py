"""Accuracy per subject, per category and overall, as a printed table and as JSON files.

Category and overall accuracies pool the questions (a category with more questions weighs more),
as the anchor computes them. Questions without a known answer (C-Eval's test split) are predicted
but not scored; they are counted apart so a 0 % never hides "no answers to compare with".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.eval.questions import Subject

CATEGORY_ORDER = ("STEM", "Social Sciences", "Humanities", "Other")
OVERALL = "Average"


@dataclass
class Tally:
    """Correct answers out of scored questions; `unscored` had no answer to compare with."""

    correct: int = 0
    scored: int = 0
    unscored: int = 0

    def add(self, prediction: str, answer: str) -> None:
        if not answer:
            self.unscored += 1
            return
        self.scored += 1
        self.correct += int(prediction == answer)

    def merge(self, other: Tally) -> None:
        self.correct += other.correct
        self.scored += other.scored
        self.unscored += other.unscored

    @property
    def accuracy(self) -> float | None:
        """Percent correct, None when nothing could be scored."""
        return 100.0 * self.correct / self.scored if self.scored else None

    def as_dict(self) -> dict[str, Any]:
        accuracy = self.accuracy
        return {"accuracy": None if accuracy is None else round(accuracy, 4), "correct": self.correct,
                "scored": self.scored, "unscored": self.unscored}


@dataclass
class SubjectResult:
    """The predictions of one subject, next to the answers."""

    subject: Subject
    predictions: list[str]
    answers: list[str]
    probabilities: list[dict[str, float]] = field(default_factory=list)

    def tally(self) -> Tally:
        tally = Tally()
        for prediction, answer in zip(self.predictions, self.answers, strict=True):
            tally.add(prediction, answer)
        return tally


@dataclass
class Scores:
    """Every level of aggregation of one benchmark run."""

    subjects: dict[str, Tally]
    categories: dict[str, Tally]
    overall: Tally


def aggregate(results: Sequence[SubjectResult]) -> Scores:
    subjects: dict[str, Tally] = {}
    categories: dict[str, Tally] = {}
    overall = Tally()
    for result in results:
        tally = result.tally()
        subjects[result.subject.key] = tally
        categories.setdefault(result.subject.category, Tally()).merge(tally)
        overall.merge(tally)
    ordered = sorted(categories, key=lambda c: (CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else len(CATEGORY_ORDER), c))
    return Scores(subjects, {c: categories[c] for c in ordered}, overall)


def _cell(tally: Tally) -> str:
    return "-" if tally.accuracy is None else f"{tally.accuracy:.2f}"


def format_table(results: Sequence[SubjectResult], scores: Scores) -> str:
    """Subjects, then categories, then the overall average; accuracy in percent with two decimals."""
    rows = [(r.subject.name, r.subject.category, scores.subjects[r.subject.key]) for r in results]
    rows += [(name, "", tally) for name, tally in scores.categories.items()]
    rows.append((OVERALL, "", scores.overall))
    width = max(len("subject"), *(len(name) for name, _, _ in rows))
    cat_width = max(len("category"), *(len(cat) for _, cat, _ in rows))
    lines = [f"{'subject'.ljust(width)}  {'category'.ljust(cat_width)}  {'n':>5}  {'accuracy':>8}"]
    lines.append("-" * len(lines[0]))
    for index, (name, category, tally) in enumerate(rows):
        if index in (len(results), len(rows) - 1):
            lines.append("-" * len(lines[0]))
        lines.append(f"{name.ljust(width)}  {category.ljust(cat_width)}  {tally.scored:>5}  {_cell(tally):>8}")
    unscored = scores.overall.unscored
    if unscored:
        lines.append(f"({unscored} question(s) have no answer in the data: predicted, not scored)")
    return "\n".join(lines)


def scores_json(results: Sequence[SubjectResult], scores: Scores, run: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary: the run's settings, then every level of aggregation."""
    return {
        **run,
        "subjects": {r.subject.key: {"name": r.subject.name, "category": r.subject.category,
                                     **scores.subjects[r.subject.key].as_dict()} for r in results},
        "categories": {name: tally.as_dict() for name, tally in scores.categories.items()},
        OVERALL.lower(): scores.overall.as_dict(),
    }


def save_results(save_dir: str | Path, results: Sequence[SubjectResult], scores: Scores, run: dict[str, Any]) -> Path:
    """scores.json (accuracies), results.json (the anchor's file: predictions per subject), results.log (the table)."""
    folder = Path(save_dir)
    folder.mkdir(parents=True, exist_ok=True)
    summary = scores_json(results, scores, run)
    (folder / "scores.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    predictions = {r.subject.key: {str(i): p for i, p in enumerate(r.predictions)} for r in results}
    (folder / "results.json").write_text(json.dumps(predictions, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (folder / "results.log").write_text(format_table(results, scores) + "\n", encoding="utf-8")
    return folder
