"""Task data from a local folder, laid out as MMLU, CMMLU and C-Eval ship it (also inside a zip).

The anchor's `evaluation/<task>/` folders hold `mapping.json` and `<task>.zip`; the benchmarks'
own releases hold the CSVs directly. Both are read in place with the `csv` module: no extraction,
no pandas, no dataset script (current `datasets` no longer runs scripts).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tunelab.errors import UserError
from tunelab.eval.questions import LETTERS, Question, Subject, question_from_cells, question_from_mapping

SPLIT_DIRS: dict[str, tuple[str, ...]] = {"dev": ("dev",), "val": ("val", "validation"), "test": ("test",)}


def _candidates(subject: str, split: str) -> list[str]:
    """Relative paths a subject's split may have: MMLU, C-Eval, then CMMLU naming."""
    paths = []
    for folder in SPLIT_DIRS[split]:
        paths += [f"data/{folder}/{subject}_{folder}.csv", f"{folder}/{subject}_{folder}.csv",
                  f"data/{folder}/{subject}.csv", f"{folder}/{subject}.csv"]
    return paths


def _is_header(cells: list[str]) -> bool:
    """A header names its question column, and its answer column or the choice letters."""
    stripped = {c.strip() for c in cells}
    names = {c.lower() for c in stripped}
    return "question" in names and ("answer" in names or {"A", "B"} <= stripped)


def parse_csv(text: str, origin: str) -> list[Question]:
    """Rows of one CSV; a header row (any of the layouts) is detected, else the MMLU order is assumed."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    questions = []
    header = rows[0] if _is_header(rows[0]) else None
    for number, cells in enumerate(rows[1:] if header else rows, start=2 if header else 1):
        try:
            if header:
                questions.append(question_from_mapping(dict(zip(header, cells))))
            else:
                questions.append(question_from_cells(cells))
        except (ValueError, KeyError) as error:
            raise UserError(f"{origin}:{number}: not a multiple-choice row: {error}") from None
    for number, question in enumerate(questions, start=2 if header else 1):
        if question.answer and question.answer not in question.letters:
            raise UserError(
                f"{origin}:{number}: answer '{question.answer}' is not one of the choices {', '.join(question.letters)}"
            )
    return questions


class LocalTask:
    """A task folder (`<task_dir>/<task>`), its CSVs either loose or inside one zip file."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        zips = sorted(root.glob("*.zip"))
        self._zip = zipfile.ZipFile(zips[0]) if zips and not (root / "data").is_dir() else None
        self._members = [m for m in self._zip.namelist() if m.endswith(".csv")] if self._zip else []

    @property
    def origin(self) -> str:
        return str(self.root)

    def _read(self, relative: str) -> tuple[str, str] | None:
        if self._zip is None:
            path = self.root / relative
            return (path.read_text(encoding="utf-8-sig"), str(path)) if path.is_file() else None
        for member in self._members:
            if member == relative or member.endswith("/" + relative):
                return self._zip.read(member).decode("utf-8-sig"), f"{self._zip.filename}:{member}"
        return None

    def subjects(self) -> list[Subject]:
        """From mapping.json when present (its order), else one subject per test / dev CSV file."""
        mapping = self.root / "mapping.json"
        if mapping.is_file():
            try:
                entries = json.loads(mapping.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise UserError(f"{mapping}:{error.lineno}: not valid JSON: {error.msg}") from None
            return [Subject(key, str(e.get("name", key)), str(e.get("category", "Other"))) for key, e in entries.items()]
        return [Subject(key, key.replace("_", " "), "Other") for key in sorted(set(self._discovered()))]

    def _discovered(self) -> Iterator[str]:
        names = self._members if self._zip else [str(p.relative_to(self.root)) for p in self.root.rglob("*.csv")]
        for name in names:
            parts = Path(name).parts
            if len(parts) >= 2 and parts[-2] in ("test", "dev"):
                stem = Path(name).stem
                yield stem.removesuffix(f"_{parts[-2]}")

    def questions(self, subject: str, split: str) -> list[Question] | None:
        """The subject's rows of `split` (dev / val / test), or None when the split has no file."""
        for relative in _candidates(subject, split):
            found = self._read(relative)
            if found is not None:
                return parse_csv(*found)
        return None


__all__ = ["LETTERS", "LocalTask", "SPLIT_DIRS", "parse_csv"]
