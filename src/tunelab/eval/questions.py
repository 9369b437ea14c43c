"""The one row type of a multiple-choice benchmark, and the normalisation of the layouts that ship.

MMLU CSVs have no header (question, A, B, C, D, answer); CMMLU has an index column and capitalised
`Question` / `Answer`; C-Eval has `id` and `explanation` and no answers in its test split; the hub's
`cais/mmlu` stores `choices` as a list and `answer` as an index. Every one becomes a `Question` so the
prompt builder and the scorer are written once.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LETTERS = string.ascii_uppercase[:10]  # A..J: enough for every benchmark we know of


@dataclass(frozen=True)
class Question:
    """One question: its choices keyed by letter (in letter order) and the correct letter ("" if unknown)."""

    question: str
    choices: tuple[tuple[str, str], ...]  # ((letter, text), ...)
    answer: str

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(letter for letter, _ in self.choices)


@dataclass(frozen=True)
class Subject:
    """A subject of a task as mapping.json describes it: file key, display name, category."""

    key: str
    name: str
    category: str


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # pandas / datasets read "5" as 5.0
    return str(value).strip()


def _answer_letter(value: Any, letters: Sequence[str]) -> str:
    """A letter, or an index into the choices (the hub's `cais/mmlu`), as a letter."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(letters):
        return letters[value]
    return _text(value).upper()


def question_from_mapping(row: Mapping[str, Any]) -> Question:
    """A row with named columns (any capitalisation): question, A..J or `choices`, answer."""
    lowered = {str(k).strip(): v for k, v in row.items()}
    by_lower = {k.lower(): v for k, v in lowered.items()}
    if "choices" in by_lower and isinstance(by_lower["choices"], (list, tuple)):
        texts = [_text(c) for c in by_lower["choices"]]
        choices = tuple(zip(LETTERS, texts))
    else:
        choices = tuple((letter, _text(lowered[letter])) for letter in LETTERS if letter in lowered)
    if not choices:
        raise ValueError(f"no choice columns (A, B, ...) in row with columns {sorted(lowered)}")
    letters = [letter for letter, _ in choices]
    return Question(_text(by_lower.get("question")), choices, _answer_letter(by_lower.get("answer"), letters))


def question_from_cells(cells: Sequence[str]) -> Question:
    """A header-less MMLU row: question, one cell per choice, answer letter last."""
    if len(cells) < 3:
        raise ValueError(f"a header-less row needs question, choices and answer; got {len(cells)} cells")
    texts = [_text(c) for c in cells[1:-1]]
    return Question(_text(cells[0]), tuple(zip(LETTERS, texts)), _text(cells[-1]).upper())
