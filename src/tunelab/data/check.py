"""`tunelab data check`: the training data path run alone, with counts, problems and token lengths.

It calls the same `load_datasets` as training, so the problem lines it prints are the lines a
training run would stop with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tunelab.config.data_args import DataArguments
from tunelab.data.conversation import Example
from tunelab.data.encode import EncodeOptions, encode_example
from tunelab.data.loader import LoadedDataset, load_datasets
from tunelab.data.templates.base import Template
from tunelab.data.validate import Problem, format_problems

TokenCounter = Callable[[Example], int]


@dataclass
class LengthSummary:
    """Token lengths of the valid examples of one check."""

    count: int
    minimum: int
    median: int
    p95: int
    maximum: int
    over_cutoff: int
    cutoff_len: int | None

    @classmethod
    def of(cls, lengths: list[int], cutoff_len: int | None) -> LengthSummary:
        values = np.asarray(lengths)
        over = int((values > cutoff_len).sum()) if cutoff_len else 0
        return cls(
            count=len(lengths), minimum=int(values.min()), median=int(np.median(values)),
            p95=int(np.percentile(values, 95)), maximum=int(values.max()), over_cutoff=over, cutoff_len=cutoff_len,
        )  # fmt: skip

    def __str__(self) -> str:
        text = f"token lengths: min {self.minimum} / median {self.median} / p95 {self.p95} / max {self.maximum}"
        if self.cutoff_len:
            text += f"; {self.over_cutoff} of {self.count} examples exceed cutoff_len {self.cutoff_len}"
        return text


@dataclass
class CheckReport:
    datasets: list[LoadedDataset]
    lengths: LengthSummary | None = None

    @property
    def problems(self) -> list[Problem]:
        return [p for item in self.datasets for p in item.problems]

    def render(self) -> str:
        rows = [("data set", "format", "rows", "valid", "invalid")]
        for item in self.datasets:
            kind = item.attr.formatting + (" (preference)" if item.attr.ranking else "")
            rows.append((item.attr.name, kind, str(item.rows), str(len(item.examples)), str(item.invalid_rows)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                 for row in rows]  # fmt: skip
        if self.lengths is not None:
            lines.append(str(self.lengths))
        problems = self.problems
        lines.append(format_problems(problems) if problems else "no problems found")
        return "\n".join(lines)


UNTRUNCATED = 1 << 40  # a cutoff_len no example reaches: lengths are measured before truncation


def encoded_length(encoded: dict[str, Any]) -> int:
    """Tokens of one encoded example: the longer side of a preference pair, else `input_ids`."""
    return max(len(value) for key, value in encoded.items() if key.endswith("input_ids"))


def template_counter(tokenizer: Any, template: Template, stage: str, data_args: DataArguments) -> TokenCounter:
    """Count an example's tokens exactly as training encodes it (same template, stage and options).

    `data check` and training share `encode_example`, so a length reported here is the length a
    training row would have before `cutoff_len` cuts it; examples longer than the cutoff are the ones
    training would truncate.
    """
    options = replace(EncodeOptions.from_data_args(data_args), cutoff_len=UNTRUNCATED)

    def count(example: Example) -> int:
        return encoded_length(encode_example(tokenizer, template, example, stage, options))

    return count


def run_check(
    names: list[str], data_args: DataArguments, stage: str = "sft", *, counter: TokenCounter | None = None,
    seed: int = 42,
) -> CheckReport:  # fmt: skip
    """Load and validate `names` as training would; measure token lengths when a counter is given."""
    loaded = load_datasets(names, data_args, stage, seed=seed)
    report = CheckReport(loaded)
    if counter is not None:
        lengths = [counter(example) for item in loaded for example in item.examples]
        if lengths:
            report.lengths = LengthSummary.of(lengths, data_args.cutoff_len)
    return report
