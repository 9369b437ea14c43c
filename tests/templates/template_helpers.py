"""Helpers for the template tests: fixture chat templates, conversations, real tokenizers.

A module of its own (not conftest) so `pytest tests/templates tests/data` can import it: both
folders have a conftest.py, and only one module can be called `conftest`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from tunelab.data.conversation import Message, Role

LOCAL_TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
SHARED_TEMPLATES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "chat_templates"
TOKENIZERS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "tokenizers"

U, A, F, OBS = Role.USER, Role.ASSISTANT, Role.FUNCTION, Role.OBSERVATION


def conv(*pairs: tuple[Role, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in pairs)


# The conversations every parity test renders (system prompt passed separately).
CONVERSATIONS = {
    "single": (None, conv((U, "Hello"), (A, "Hi there"))),
    "single_system": ("You are a helpful assistant", conv((U, "Hello"), (A, "Hi there"))),
    "multi": (
        "You are a helpful assistant",
        conv((U, "Hello"), (A, "Hi there"), (U, "Who are you"), (A, "   I am an assistant   ")),
    ),
    "multi_no_system": (None, conv((U, "What is 2+2?"), (A, "4"), (U, "And 3+3?"), (A, "6, of course."))),
    "unicode": ("你是一个助手。", conv((U, "你好，世界！"), (A, "你好！有什么可以帮你？"))),
}
GENERATION = {
    "gen_single": (None, conv((U, "Hello"))),
    "gen_system": ("You are a helpful assistant", conv((U, "Hello"))),
    "gen_multi": ("You are a helpful assistant", conv((U, "Hello"), (A, "Hi there"), (U, "Another question"))),
}


@cache
def load_fixture(name: str) -> dict:
    for folder in (SHARED_TEMPLATES, LOCAL_TEMPLATES):
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError(name)


@cache
def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZERS / name))
