"""Session fixtures for the template tests (the helpers live in template_helpers.py)."""

from __future__ import annotations

import pytest
from template_helpers import load_tokenizer


@pytest.fixture(scope="session")
def qwen25_tokenizer():
    return load_tokenizer("qwen2.5")


@pytest.fixture(scope="session")
def qwen3_tokenizer():
    return load_tokenizer("qwen3")


@pytest.fixture(scope="session")
def deepseek_tokenizer():
    return load_tokenizer("deepseek-v3")
