"""Shared test fixtures: paths to `../shared` (tokenizers, chat templates) and a clean environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
TOKENIZERS = FIXTURES / "tokenizers"
CHAT_TEMPLATES = FIXTURES / "chat_templates"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return TOKENIZERS


@pytest.fixture(scope="session")
def chat_template_dir() -> Path:
    return CHAT_TEMPLATES
