"""A data file's bytes as text, and its lines: the one place text files are decoded and split.

Data files are UTF-8 (a UTF-8 byte-order mark is dropped). A file that starts with a UTF-16 or
UTF-32 byte-order mark (what Windows tools write as "Unicode") is decoded as such, with one log line
saying so, because the mark makes the encoding certain. Anything else that is not valid UTF-8 is
refused at its first bad byte rather than guessed at (guessing turns Latin-1 or GBK text into
plausible garbage that would be trained on). A NUL character is refused too: it means a binary
file, or UTF-16 without its mark, and no tokenizer treats it as text.

Lines break only at "\\n", "\\r\\n" and "\\r" (what text files and JSON lines use). `str.splitlines`
also breaks at U+2028, U+2029, U+0085 and a few control characters, which JSON allows inside
strings: splitting there cut valid rows in two and shifted every later row number.
"""

from __future__ import annotations

import codecs
import logging
import re

from tunelab.data.validate import Problem

logger = logging.getLogger("tunelab.data")

# Longest mark first: the UTF-32 LE mark starts with the UTF-16 LE one.
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"), (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)  # fmt: skip
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def decode_text(data: bytes, label: str) -> str | Problem:
    """The text of a data file, or the `Problem` (line and byte) that stops it from being read."""
    codec, name, skip = "utf-8", "UTF-8", 0
    if data.startswith(codecs.BOM_UTF8):
        skip = len(codecs.BOM_UTF8)
    else:
        for mark, candidate, candidate_name in _MARKS:
            if data.startswith(mark):
                codec, name, skip = candidate, candidate_name, len(mark)
                break
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError as error:
        offset = skip + error.start
        prefix = data[skip:offset].decode(codec, errors="replace")
        line = prefix.count("\n") + 1
        return Problem(
            label, line, "file",
            f"not valid {name} at byte offset {offset} (line {line}, byte 0x{data[offset]:02x}); "
            "save the file as UTF-8 (the file is not read)",
        )  # fmt: skip
    if name != "UTF-8":
        logger.info("%s: decoded as %s (the file starts with a %s byte-order mark)", label, name, name)
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        return Problem(
            label, line, "file",
            f"NUL character at line {line}: a binary file, or UTF-16 without a byte-order mark; "
            "save the file as UTF-8 (the file is not read)",
        )  # fmt: skip
    return text


def split_lines(text: str) -> list[str]:
    """The lines of `text` without their ends, breaking only at \\n, \\r\\n and \\r (as file iteration does)."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line, not an empty line after it
    return lines
