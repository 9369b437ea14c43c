"""Turns a raw value (YAML scalar or command-line string) into the type a field declares,
or fails with a message naming the key, the value and the type expected."""

from __future__ import annotations

import enum
import json
import math
import types
import typing
from typing import Any

from tunelab.config.sources import FLAG_WITHOUT_VALUE, RawValue
from tunelab.errors import UserError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"null", "~", "None", ""}  # lowercase "none" stays text: report_to: none means no reporting


class CoercionError(Exception):
    """Raised inside coercion; turned into a UserError naming the key by `coerce`."""


def describe(hint: Any) -> str:
    """A short human name for a type hint, e.g. 'int or null', "one of 'a', 'b'"."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        parts = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            if isinstance(arg, type) and issubclass(arg, enum.Enum):
                return "one of " + ", ".join(repr(m.value) for m in arg)
            parts.append(describe(arg))
        text = " or ".join(dict.fromkeys(parts))
        return text + (" or null" if type(None) in typing.get_args(hint) else "")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "mapping"
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "null")


def _to_bool(value: Any) -> bool:
    if value is FLAG_WITHOUT_VALUE:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CoercionError


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise CoercionError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise CoercionError from None
            if number.is_integer():
                return int(number)
    raise CoercionError


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise CoercionError
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an integer past 1.8e308: infinite, which config/ranges.py refuses by name
            return math.copysign(math.inf, value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise CoercionError from None
    raise CoercionError


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CoercionError


def _convert(value: Any, hint: Any) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value.strip()):
                return choice
            if isinstance(choice, bool) and not isinstance(value, bool):
                continue
            if isinstance(choice, int) and not isinstance(choice, bool):
                try:
                    if _to_int(value) == choice:
                        return choice
                except CoercionError:
                    pass
        raise CoercionError
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip() in _NONE)):
            return None
        # Enums and Literals first (they validate), then the plain types in a fixed order so "8" stays an int.
        ordered = sorted(
            (a for a in args if a is not type(None)),
            key=lambda a: (
                0 if (isinstance(a, type) and issubclass(a, enum.Enum)) or typing.get_origin(a) is typing.Literal
                else {bool: 1, int: 2, float: 3, dict: 4, str: 5, list: 6}.get(typing.get_origin(a) or a, 7)
            ),
        )
        enum_failed = False
        for arg in ordered:
            if isinstance(arg, type) and issubclass(arg, enum.Enum):
                try:
                    return _convert(value, arg)
                except CoercionError:
                    enum_failed = True
                    continue
            if arg is str and enum_failed:
                raise CoercionError  # `SchedulerType | str`: the str is the enum's spelling, not any text
            try:
                return _convert(value, arg)
            except CoercionError:
                continue
        raise CoercionError
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        raw = value.value if isinstance(value, enum.Enum) else value
        for member in hint:
            if raw == member.value or (isinstance(raw, str) and raw.strip() == str(member.value)):
                return member.value
        raise CoercionError
    if hint is bool:
        return _to_bool(value)
    if value is FLAG_WITHOUT_VALUE:
        raise CoercionError
    if hint is int:
        return _to_int(value)
    if hint is float:
        return _to_float(value)
    if hint is str:
        return _to_str(value)
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                raise CoercionError from None
            if isinstance(parsed, dict):
                return parsed
        raise CoercionError
    if origin in (list, tuple) or hint in (list, tuple):
        (item_hint,) = typing.get_args(hint)[:1] or (Any,)
        items = value if isinstance(value, (list, tuple)) else (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else None
        )
        if items is None:
            raise CoercionError
        return [_convert(item, item_hint) for item in items]
    return value


def coerce(key: str, raw: RawValue, hint: Any) -> Any:
    """Convert `raw` to `hint` or raise a UserError naming key, value, origin and the expected type."""
    try:
        return _convert(raw.value, hint)
    except CoercionError:
        shown = "(no value)" if raw.value is FLAG_WITHOUT_VALUE else repr(raw.value)
        expected = describe(hint)
        suggestion = ""
        if typing.get_origin(hint) is typing.Literal or "one of" in expected:
            import difflib

            choices = _choices(hint)
            close = difflib.get_close_matches(str(raw.value), choices, n=1)
            if close:
                suggestion = f" Did you mean '{close[0]}'?"
        raise UserError(f"{raw.origin}: key '{key}' has value {shown}, expected {expected}.{suggestion}") from None


def _choices(hint: Any) -> list[str]:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return [str(a) for a in typing.get_args(hint)]
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(hint) for c in _choices(arg)]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [str(m.value) for m in hint]
    return []
