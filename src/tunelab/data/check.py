"""`tunelab data check`: the training data path run alone, with counts, problems and token lengths.

It calls the same `load_datasets` as training, so the problem lines it prints are the lines a
training run would stop with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunelab.config.data_args import DataArguments
from tunelab.data.conversation import Example
from tunelab.data.loader import LoadedDataset, load_datasets
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


def chat_template_counter(tokenizer: Any) -> TokenCounter:
    """Count the tokens of an example as the tokenizer's own chat template renders it.

    This is the one place `data check` turns an `Example` into a token count; switching it to
    tunelab's template engine means changing this function only.
    """

    def count(example: Example) -> int:
        if example.text is not None:
            return len(tokenizer(example.text, add_special_tokens=True)["input_ids"])
        messages: list[dict[str, str]] = []
        if example.system:
            messages.append({"role": "system", "content": example.system})
        for message in example.messages:
            role = "assistant" if message.role.value in ("assistant", "function_call") else "user"
            messages.append({"role": role, "content": message.content})
        responses = [m for m in (example.chosen, example.rejected) if m is not None]
        if responses:
            longest = max(responses, key=lambda m: len(m.content))
            messages.append({"role": "assistant", "content": longest.content})
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(messages, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return len(ids)
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        return len(tokenizer(text)["input_ids"])

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
