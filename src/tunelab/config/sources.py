"""Reads the three places a config value can come from, in the order later ones win:
a YAML or JSON file (read by `config_file.py`: UTF-8, bounded aliases, huge numbers each one message),
then `key=value` overrides, then `--key value` / `--flag` arguments.

Values from files keep their YAML types; values from the command line stay strings and are
typed later against the field they fill, so `3.e-5` and `5e-5` both become floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config.config_file import read_config_file
from tunelab.errors import UserError

FLAG_WITHOUT_VALUE = object()  # `--fp16` with no value: True for a bool key, an error otherwise


@dataclass(frozen=True)
class RawValue:
    """A value as the user wrote it, and where, for error messages."""

    value: Any
    origin: str


def is_config_path(token: str) -> bool:
    return token.lower().endswith((".yaml", ".yml", ".json")) and "=" not in token and not token.startswith("-")


def read_sources(argv: list[str]) -> dict[str, RawValue]:
    """Merge file, `key=value` and `--key value` sources; later sources win."""
    file_values: dict[str, RawValue] = {}
    overrides: dict[str, RawValue] = {}
    flags: dict[str, RawValue] = {}
    tokens = list(argv)
    if tokens and is_config_path(tokens[0]):
        path = Path(tokens.pop(0))
        file_values = {k: RawValue(v, str(path)) for k, v in read_config_file(path).items()}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.startswith("--"):
            body = token[2:]
            if not body:
                raise UserError("a lone '--' on the command line: write --key value.")
            if "=" in body:
                key, value = body.split("=", 1)
                flags[key] = RawValue(value, "command line")
                continue
            if index < len(tokens) and not tokens[index].startswith("--"):
                flags[body] = RawValue(tokens[index], "command line")
                index += 1
            else:
                flags[body] = RawValue(FLAG_WITHOUT_VALUE, "command line")
        elif "=" in token:
            key, value = token.split("=", 1)
            if not key:
                raise UserError(f"'{token}' on the command line has no key before '='.")
            overrides[key] = RawValue(value, "command line")
        elif is_config_path(token):
            raise UserError(
                f"'{token}' looks like a second config file; give one file first, then key=value or --key value."
            )
        else:
            raise UserError(
                f"unexpected argument '{token}': write a config file first, then key=value or --key value."
            )
    return {**file_values, **overrides, **flags}
