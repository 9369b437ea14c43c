"""Problems found in data, and the small checks that find them.

Every problem names the file, the row and the field, in the form `file:row: field: reason`, so a
user can open the file and fix the row. `tunelab data check` and `tunelab train` print the same
lines because both format the same `Problem` objects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from tunelab.data.media import data_url, is_remote, remote_reason
from tunelab.errors import UserError

MAX_LISTED = 20
MAX_NESTING = 100  # levels of objects / lists in one row; real rows use under ten
MAX_INT_DIGITS = 1000  # Python refuses to convert longer ones past 4300 digits; no data set needs one
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one example (or with a whole file, when `row` is the line it broke at)."""

    file: str
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.field}: {self.reason}"


def format_problems(problems: Sequence[Problem], limit: int = MAX_LISTED) -> str:
    """The first `limit` problems, one a line, and the total, as training and `data check` print them."""
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    noun = "problem" if len(problems) == 1 else "problems"
    lines.append(f"{len(problems)} {noun} found")
    return "\n".join(lines)


class InvalidDataError(UserError):
    """Raised before training when examples are invalid and `skip_invalid` is off."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid examples in the data:\n"
            + format_problems(self.problems)
            + "\nFix these rows, or set `skip_invalid: true` to drop them."
        )


def type_name(value: Any) -> str:
    """A user-facing name of a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float, OversizedInt)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class OversizedInt:
    """An integer too long to hold, left in its place by the JSON reader so the row check names its field."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"OversizedInt({self.digits} digits)"


class DuplicateKeys(dict):  # type: ignore[type-arg]
    """A JSON object that named a key twice: Python keeps the last value, so the reader marks it for the row check."""

    duplicates: tuple[str, ...] = ()


def _field_name(path: tuple[str | int, ...]) -> str:
    """`conversations[1].value` from ("conversations", 1, "value"); odd characters escaped so it prints."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text.encode("ascii", "backslashreplace").decode("ascii") if _SURROGATE.search(text) else text


def _surrogate_reason(text: str) -> str | None:
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    code = f"\\u{ord(found.group()):04x}"
    return (f"lone surrogate {code} at character {found.start() + 1}: not valid Unicode (a JSON {code} escape "
            "without its pair), which no tokenizer can encode; fix or remove it")


def hostile_value(file: str, row: int, data: dict[str, Any]) -> Problem | None:
    """The first value of a parsed row that later steps could not handle, or None.

    Nesting deeper than `MAX_NESTING` (walking or hashing it would overflow the stack), an integer
    longer than `MAX_INT_DIGITS` (an `OversizedInt`), a key written twice in one object (`DuplicateKeys`:
    one of the values would vanish) and a lone surrogate in a key or a string (it passes
    every check, then crashes tokenizing or writing the row as UTF-8). The walk is iterative and
    stops at the depth limit, so it is bounded by the row's size.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            reason = _surrogate_reason(value)
            if reason:
                return Problem(file, row, _field_name(path), reason)
        elif isinstance(value, OversizedInt):
            return Problem(file, row, _field_name(path), f"integer with more than {MAX_INT_DIGITS} digits ({value.digits})")
        elif isinstance(value, (dict, list)):
            if len(path) >= MAX_NESTING:
                return Problem(file, row, _field_name(path[:1]), f"JSON nested deeper than {MAX_NESTING} levels")
            if isinstance(value, DuplicateKeys):
                keys = ", ".join(repr(k) for k in value.duplicates)
                return Problem(file, row, _field_name(path) or "row", f"the key {keys} appears twice in one JSON object; only "
                               "the last value would be kept: remove or rename the other")
            if isinstance(value, dict):
                for key in value:
                    reason = _surrogate_reason(key) if isinstance(key, str) else None
                    if reason:
                        return Problem(file, row, _field_name((*path, key)), "the key has a " + reason)
                children: list[tuple[Any, tuple[str | int, ...]]] = [(v, (*path, k)) for k, v in value.items()]
            else:
                children = [(v, (*path, i)) for i, v in enumerate(value)]
            stack.extend(reversed(children))
    return None


class RowChecker:
    """Collects the problems of one row; the helpers return a clean value or None after recording why."""

    def __init__(self, file: str, row: int) -> None:
        self.file = file
        self.row = row
        self.problems: list[Problem] = []

    def add(self, field: str, reason: str) -> None:
        self.problems.append(Problem(self.file, self.row, field, reason))

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self, value: Any, field: str, *, required: bool = True, allow_empty: bool = False) -> str | None:
        """A string field: missing, wrong type and empty content are problems (empty only when required)."""
        if value is None:
            if required:
                self.add(field, "missing required field")
            return None
        if not isinstance(value, str):
            self.add(field, f"expected a string, got {type_name(value)}")
            return None
        if required and not allow_empty and not value.strip():
            self.add(field, "empty content")
            return None
        return value

    def media(self, value: Any, field: str, media_dir: str | None, *, kind: str = "images") -> tuple[Any, ...]:
        """Media references of the column `kind` (one or a list), as the loaders take them: a path found
        under `media_dir` or as given (the anchor's `_find_medias`), a `data:` URL kept as it is, bytes or
        `{"bytes": ...}` turned into a data URL, `{"path": ...}` into its path; for videos also a folder of
        frames, or a list of frame paths (kept as a tuple). Remote URLs are refused: nothing is downloaded."""
        if value is None or value == "" or value == []:
            return ()
        items = value if isinstance(value, (list, tuple)) else [value]
        refs = [self.media_item(item, f"{field}[{i}]", media_dir, kind) for i, item in enumerate(items)]
        return tuple(ref for ref in refs if ref is not None)

    def media_item(self, item: Any, field: str, media_dir: str | None, kind: str) -> Any:
        """One media reference (see `media`), or None after recording why it cannot be used."""
        if kind == "videos" and isinstance(item, (list, tuple)):
            if not item:
                self.add(field, "a video given as frames needs at least one frame")
                return None
            frames = [self._media_ref(frame, f"{field}[{j}]", media_dir, "images") for j, frame in enumerate(item)]
            return tuple(frames) if all(frame is not None for frame in frames) else None
        return self._media_ref(item, field, media_dir, kind)

    def _media_ref(self, item: Any, field: str, media_dir: str | None, kind: str) -> str | None:
        if isinstance(item, dict):
            if isinstance(item.get("bytes"), (bytes, bytearray)):
                return data_url(bytes(item["bytes"]), kind)
            if not isinstance(item.get("path"), str):
                self.add(field, 'expected {"path": <file>} or {"bytes": <the file\'s bytes>}, got an object with '
                         f"keys {', '.join(map(repr, item)) or 'none'}")
                return None
            item = item["path"]
        if isinstance(item, (bytes, bytearray)):
            return data_url(bytes(item), kind)
        if not isinstance(item, str) or not item:
            what = "an empty path" if item == "" else type_name(item)
            self.add(field, f"expected a file path, a data URL or bytes, got {what}")
            return None
        if item.startswith("data:"):
            if "," not in item:
                self.add(field, f"a data URL must look like data:<type>;base64,<data>, got {item[:40]!r}")
                return None
            return item
        if is_remote(item):
            self.add(field, remote_reason(item))
            return None
        if item.lower().startswith("file://"):
            item = url2pathname(urlparse(item).path)
        candidate = os.path.join(media_dir, item) if media_dir else item
        for path in (candidate, item):
            if os.path.isfile(path) or (kind == "videos" and os.path.isdir(path)):  # a folder of frames is a video
                return path
        where = f" (looked in {media_dir})" if media_dir else ""
        self.add(field, f"file not found: {item}{where}")
        return None
