"""Read the rows of local data files: json, jsonl, csv, parquet, arrow, txt, or a folder of one type.

Rows come back as plain dicts with their 1-based row number, so a problem can name the row. JSON is
parsed here rather than through `datasets` so that malformed JSON is reported with its line, and a
single bad JSON line does not hide the others.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.data.validate import Problem
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.data")

FILE_TYPES = {
    ".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow", ".txt": "text",
}  # fmt: skip


@dataclass(frozen=True)
class RawRow:
    """One row of a data file before conversion."""

    file: str
    row: int
    data: dict[str, Any]


RowOrProblem = RawRow | Problem


def file_type(path: Path) -> str:
    """The reader for a file, from its extension."""
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unsupported file type '{path.suffix}'. Supported: {', '.join(sorted(FILE_TYPES))}")
    return kind


def data_files(path: Path) -> list[Path]:
    """The files a `file_name` entry names: the file itself, or every visible file of a folder (one type)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(f"{path}: the folder holds no data files")
        kinds = {file_type(p) for p in files}
        if len(kinds) > 1:
            raise UserError(f"{path}: a data folder must hold files of one type, found {', '.join(sorted(kinds))}")
        return files
    raise UserError(f"{path}: file or folder not found")


def read_rows(path: Path) -> Iterator[RowOrProblem]:
    """Every row of one local file, or a `Problem` where a row cannot be parsed."""
    kind = file_type(path)
    label = str(path)
    if kind == "json":
        yield from _read_json(path, label)
    elif kind == "csv":
        yield from _read_csv(path, label)
    elif kind == "text":
        yield from _read_text(path, label)
    else:
        yield from _read_table(path, label, kind)


def _read_json(path: Path, label: str) -> Iterator[RowOrProblem]:
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if not stripped:
        return
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            yield _json_problem(label, error, error.lineno)
            return
        for index, item in enumerate(rows):
            yield _as_row(label, index + 1, item)
        return
    if stripped.startswith("{") and "\n" in stripped.rstrip():
        # A single pretty-printed object is one row; anything else starting with `{` is JSON lines.
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            yield _as_row(label, 1, whole)
            return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            yield _json_problem(label, error, number)
            continue
        yield _as_row(label, number, item)


def _json_problem(label: str, error: json.JSONDecodeError, line: int) -> Problem:
    return Problem(label, line, "json", f"malformed JSON at line {line}, column {error.colno}: {error.msg}")


def _as_row(label: str, row: int, item: Any) -> RowOrProblem:
    if not isinstance(item, dict):
        kind = "list" if isinstance(item, list) else type(item).__name__
        return Problem(label, row, "row", f"expected an object, got {kind}")
    return RawRow(label, row, item)


def _read_csv(path: Path, label: str) -> Iterator[RowOrProblem]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        start = 2  # line 1 is the header
        for record in reader:
            row = {key: value for key, value in record.items() if key is not None}
            if None in record:
                yield Problem(label, start, "row", f"{len(record[None]) + len(row)} values for {len(row)} columns")
            else:
                yield RawRow(label, start, row)
            start = reader.line_num + 1


def _read_text(path: Path, label: str) -> Iterator[RowOrProblem]:
    blank = 0
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                blank += 1
                continue
            yield RawRow(label, number, {"text": line})
    if blank:
        logger.info("%s: skipped %d blank lines", label, blank)


def _read_table(path: Path, label: str, kind: str) -> Iterator[RowOrProblem]:
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            table = _read_arrow(path, pa)
    except (pa.ArrowInvalid, OSError) as error:
        yield Problem(label, 1, "file", f"cannot read {kind} file: {error}")
        return
    for index, item in enumerate(table.to_pylist()):
        yield RawRow(label, index + 1, item)


def _read_arrow(path: Path, pa: Any) -> Any:
    """Arrow IPC in stream form (what `datasets` writes) or file form."""
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()
