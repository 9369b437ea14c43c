"""Read the rows of local data files: json, jsonl, csv, parquet, arrow, txt, or a folder of one type.

Rows come back as plain dicts with their 1-based row number, so a problem can name the row. Text
files are decoded in `file_text.py`, JSON parsed in `json_rows.py`, CSV in `csv_rows.py`; every row
then passes `validate.hostile_value` (depth, huge integers, lone surrogates) before conversion.
Hostile bytes end as a `Problem` or a `UserError`, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.data.csv_rows import parse_csv
from tunelab.data.file_text import decode_text, split_lines
from tunelab.data.json_rows import NumberedItem, parse_json
from tunelab.data.validate import OversizedInt, Problem, hostile_value
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
    """Every row of one local file, or a `Problem` where a row (or the file from there on) cannot be read.

    Whatever the bytes, this yields rows and problems or raises `UserError`: never a traceback.
    """
    kind = file_type(path)
    label = str(path)
    if kind in ("parquet", "arrow"):
        items: Iterable[NumberedItem | Problem] = _read_table(path, label, kind)
    else:
        text = decode_text(_read_bytes(path), label)
        if isinstance(text, Problem):
            yield text
            return
        if kind == "json":
            items = parse_json(text, label)
        elif kind == "csv":
            items = parse_csv(text, label)
        else:
            items = _read_text(text, label)
    for item in items:
        yield item if isinstance(item, Problem) else _as_row(label, *item)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the file: {error.strerror or error}") from None


def _as_row(label: str, row: int, item: Any) -> RowOrProblem:
    if not isinstance(item, dict):
        kind = "int" if isinstance(item, OversizedInt) else type(item).__name__
        return Problem(label, row, "row", f"expected an object, got {kind}")
    return hostile_value(label, row, item) or RawRow(label, row, item)


def _read_text(text: str, label: str) -> Iterator[NumberedItem]:
    blank = 0
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            blank += 1
            continue
        yield number, {"text": line}
    if blank:
        logger.info("%s: skipped %d blank lines", label, blank)


def _read_table(path: Path, label: str, kind: str) -> Iterator[NumberedItem | Problem]:
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            table = _read_arrow(path, pa)
        table.validate(full=True)  # damaged offsets read unchecked would crash the interpreter in to_pylist
        items = table.to_pylist()
    except (pa.ArrowException, OSError, ValueError) as error:  # a damaged file fails in many ways
        yield Problem(label, 1, "file", f"cannot read {kind} file: {error}")
        return
    yield from enumerate(items, start=1)


def _read_arrow(path: Path, pa: Any) -> Any:
    """Arrow IPC in stream form (what `datasets` writes) or file form."""
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()
