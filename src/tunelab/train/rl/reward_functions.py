"""GRPO's reward functions: built-ins, plus any Python callable named in the config.

A reward function takes keyword arguments and returns one float per completion:

    def reward(completions: list[str], prompts: list[str], answers: list[str | None], **kwargs) -> list[float]

`completions` are the generated texts (special tokens removed), `prompts` the rendered prompts and
`answers` the reference answers of the data set (the last assistant turn of each example, None
where there is none), all of the same length: the group of each prompt is repeated next to each
other. Extra keyword arguments may be added later, so user functions should accept `**kwargs`
(the same convention as trl's reward functions, so those work here unchanged).

`reward_funcs` names them, comma separated: a built-in (`exact_match`, `format:<tag>`,
`think_format`, `length` / `length:<chars>`, `contains:<text>`), `package.module:function`, or
`path/to/file.py:function`. Every name is resolved at config check time, before weights load.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

RewardFunction = Callable[..., Sequence[float]]
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def _normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


def _final_answer(completion: str) -> str:
    """What a completion answers: the `<answer>` tag's content if any, else the text after a `<think>` block."""
    tagged = ANSWER_TAG.search(completion)
    if tagged:
        return tagged.group(1)
    return THINK_BLOCK.sub("", completion)


def exact_match(completions: Sequence[str], answers: Sequence[str | None], **_: Any) -> list[float]:
    """1.0 where the completion's answer equals the reference answer (case and spacing ignored), else 0.0."""
    return [float(answer is not None and _normalise(_final_answer(c)) == _normalise(answer))
            for c, answer in zip(completions, answers, strict=True)]


def format_reward(tag: str) -> RewardFunction:
    """1.0 where the completion holds a `<tag>...</tag>` block, else 0.0."""
    pattern = re.compile(rf"<{re.escape(tag)}>.*?</{re.escape(tag)}>", re.DOTALL)

    def reward(completions: Sequence[str], **_: Any) -> list[float]:
        return [float(bool(pattern.search(c))) for c in completions]

    reward.__name__ = f"format:{tag}"
    return reward


def think_format(completions: Sequence[str], **_: Any) -> list[float]:
    """1.0 where the completion is `<think>...</think>` followed by a non-empty answer (reasoning models' format)."""
    pattern = re.compile(r"^\s*<think>.*?</think>\s*\S", re.DOTALL)
    return [float(bool(pattern.match(c))) for c in completions]


def length_reward(limit: int = 200) -> RewardFunction:
    """max(0, 1 − characters / limit): shorter completions score higher (a dense signal for brevity)."""

    def reward(completions: Sequence[str], **_: Any) -> list[float]:
        return [max(0.0, 1.0 - len(c.strip()) / limit) for c in completions]

    reward.__name__ = f"length:{limit}"
    return reward


def contains_reward(text: str) -> RewardFunction:
    """1.0 where the completion contains `text` (case ignored), else 0.0."""

    def reward(completions: Sequence[str], **_: Any) -> list[float]:
        return [float(text.lower() in c.lower()) for c in completions]

    reward.__name__ = f"contains:{text}"
    return reward


BUILTINS = ("exact_match", "format:<tag>", "think_format", "length[:chars]", "contains:<text>")


def _builtin(name: str) -> RewardFunction | None:
    head, _, arg = name.partition(":")
    if name == "exact_match":
        return exact_match
    if name == "think_format":
        return think_format
    if head == "format" and arg:
        return format_reward(arg)
    if head == "contains" and arg:
        return contains_reward(arg)
    if head == "length":
        if not arg:
            return length_reward()
        if not arg.isdigit() or int(arg) <= 0:
            raise UserError(f"reward_funcs: {name!r}: length takes a positive number of characters, e.g. length:100.")
        return length_reward(int(arg))
    return None


def _from_file(path: str, function: str, name: str) -> RewardFunction:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"reward_funcs: {name!r}: no file {file}.")
    spec = importlib.util.spec_from_file_location(f"tunelab_reward_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as error:  # a user's file: any error is theirs to see
        raise UserError(f"reward_funcs: {name!r}: {file} failed to load: {type(error).__name__}: {error}") from None
    return _attribute(module, function, name)


def _from_module(module_name: str, function: str, name: str) -> RewardFunction:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise UserError(f"reward_funcs: {name!r}: cannot import module {module_name!r} "
                        f"({type(error).__name__}: {error}).") from None
    return _attribute(module, function, name)


def _attribute(module: Any, function: str, name: str) -> RewardFunction:
    found = getattr(module, function, None)
    if not callable(found):
        raise UserError(f"reward_funcs: {name!r}: {module.__name__} has no function {function!r}.")
    return found


def load_reward_function(name: str) -> RewardFunction:
    """One entry of `reward_funcs` as a callable (UserError naming it when it cannot be found)."""
    builtin = _builtin(name)
    if builtin is not None:
        return builtin
    target, sep, function = name.rpartition(":")
    if not sep or not target or not function:
        raise UserError(f"reward_funcs: unknown reward function {name!r}; built-ins: {', '.join(BUILTINS)}; "
                        "or name your own as module:function or path/to/file.py:function.")
    if target.endswith(".py") or "/" in target or "\\" in target:
        return _from_file(target, function, name)
    return _from_module(target, function, name)


def parse_names(spec: str | None) -> list[str]:
    return [part.strip() for part in (spec or "").split(",") if part.strip()]


def load_reward_functions(spec: str | None) -> list[RewardFunction]:
    return [load_reward_function(name) for name in parse_names(spec)]


def call_reward_function(function: RewardFunction, *, completions: list[str], prompts: list[str],
                         answers: list[str | None]) -> list[float]:
    """Call one function and check what it returns: one finite-or-None number per completion."""
    values = function(completions=completions, prompts=prompts, answers=answers)
    name = getattr(function, "__name__", repr(function))
    values = list(values)
    if len(values) != len(completions):
        raise UserError(f"reward function {name} returned {len(values)} values for {len(completions)} completions.")
    return [float("nan") if v is None else float(v) for v in values]
