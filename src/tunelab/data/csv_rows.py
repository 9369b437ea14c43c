"""CSV data files: the header, then one numbered row per record, with every way a CSV can go wrong named.

Python's `csv` module (Excel dialect, as `datasets` and the anchor read CSV) is forgiving in ways that
lose data without a word: a quote that is never closed swallows every later row into one field, a
column named twice in the header keeps only its last values (`DictReader`), and a field over its
128 KiB limit raises a bare `csv.Error`. Here the field limit is raised to `FIELD_LIMIT` for the read
(and put back after, since it is process-wide), and the rest become problems with their line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

from tunelab.data.validate import Problem

FIELD_LIMIT = 16 * 1024 * 1024  # characters in one field: far beyond any example, bounded for memory
_FIELD_END = re.compile(r"[,\r\n]")

NumberedRow = tuple[int, dict[str, str | None]]


def parse_csv(text: str, label: str) -> list[NumberedRow | Problem]:
    """Every record after the header as (line it starts on, {column: value}), or the problems that stop it."""
    lines = _Lines(text)
    reader = csv.reader(lines)
    out: list[NumberedRow | Problem] = []
    start = last = 1  # the line the record being read starts on; the line the last record started on
    with _field_limit(FIELD_LIMIT):
        try:
            header = next(reader, None)
            if header is None:
                return out
            duplicate = _duplicate_column(header)
            if duplicate:
                return [Problem(label, 1, "header", duplicate)]
            start = reader.line_num + 1
            for record in reader:
                if record:  # blank lines hold no row (as csv.DictReader skips them)
                    out.append(_row(label, start, header, record))
                    last = start
                start = reader.line_num + 1
        except csv.Error as error:
            out.append(_csv_problem(label, start, lines, error))
            return out
    if _ends_in_open_quote(text[lines.offset_of(last):]):
        # csv reads the rest of the file into that one field; the record and what it swallowed are not rows
        problem = Problem(label, last, "csv", f"unterminated quoted field starting at line {last}; "
                          "it runs to the end of the file, so no row after it is read")  # fmt: skip
        out = [*out[:-1], problem] if out else [problem]
    return out


def _row(label: str, line: int, header: list[str], record: list[str]) -> NumberedRow | Problem:
    if len(record) > len(header):
        return Problem(label, line, "row", f"{len(record)} values for {len(header)} columns")
    values: list[str | None] = [*record, *([None] * (len(header) - len(record)))]  # as DictReader's restval
    return line, dict(zip(header, values))


def _duplicate_column(header: list[str]) -> str | None:
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if name in seen:
            return (f"duplicate column '{name}' in the header (columns {seen[name]} and {index}); "
                    "rename one so no values are lost (the file is not read)")  # fmt: skip
        seen[name] = index
    return None


def _csv_problem(label: str, start: int, lines: _Lines, error: csv.Error) -> Problem:
    if "field limit" in str(error):
        open_quote = _ends_in_open_quote(lines.text[lines.offset_of(start):lines.consumed])
        hint = f" (a quote opened in the record starting at line {start} and never closed?)" if open_quote else ""
        return Problem(label, start, "csv", f"CSV field larger than {FIELD_LIMIT} characters (16 MiB) in the record "
                       f"starting at line {start}{hint}; the rest of the file is not read")  # fmt: skip
    return Problem(label, start, "csv", f"cannot parse CSV at line {start}: {error}; the rest of the file is not read")


def _ends_in_open_quote(text: str) -> bool:
    """Whether `text`, read from the start of a record as the csv module reads it, ends inside a quoted field."""
    i, end = 0, len(text)
    while i < end:
        if text[i] == '"':  # a field that opens with a quote runs to the next quote that is not doubled
            j = i + 1
            while True:
                k = text.find('"', j)
                if k < 0:
                    return True
                if text.startswith('"', k + 1):
                    j = k + 2
                    continue
                i = k + 1
                break
        found = _FIELD_END.search(text, i)  # the rest of the field (quotes inside it are literal)
        if found is None:
            return False
        i = found.end()
    return False


class _Lines:
    """The lines of a text as csv.reader pulls them (breaks at \\n, \\r\\n, \\r), remembering where each starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lines = io.StringIO(text, newline="")
        self._starts = [0]  # character offset of line 1, 2, ...
        self.consumed = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._lines.readline()
        if not line:
            raise StopIteration
        self.consumed += len(line)
        self._starts.append(self.consumed)
        return line

    def offset_of(self, line: int) -> int:
        return self._starts[min(line, len(self._starts)) - 1]


@contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)
