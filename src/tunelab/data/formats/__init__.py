"""Converters from each on-disk format to tunelab's `Example`, with the row's problems.

Each converter is a pure function `convert(row, ctx) -> Example | None`: it records every problem
it finds on the `RowChecker` and returns None when the row cannot be used.
"""

from __future__ import annotations

from collections.abc import Callable

from tunelab.data.conversation import Example
from tunelab.data.formats.alpaca import convert_alpaca
from tunelab.data.formats.common import ConvertContext
from tunelab.data.formats.openai import convert_openai
from tunelab.data.formats.sharegpt import convert_sharegpt
from tunelab.data.validate import RowChecker

Converter = Callable[[dict, ConvertContext, RowChecker], "Example | None"]

CONVERTERS: dict[str, Converter] = {
    "alpaca": convert_alpaca,
    "sharegpt": convert_sharegpt,
    "openai": convert_openai,
}

__all__ = ["CONVERTERS", "ConvertContext", "Converter", "convert_alpaca", "convert_openai", "convert_sharegpt"]
