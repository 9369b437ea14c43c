"""Inference fixtures: a tiny random Qwen2 (untied head, so greedy output varies) with the real
Qwen2.5 tokenizer, and a private cache / working folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.testing import TinyModelSpec, build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=False)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-infer"), family="qwen2", spec=spec, seed=3)


@pytest.fixture(autouse=True)
def _isolated_one_thread(private_cache: Path, one_torch_thread: None) -> Path:
    """Every test here gets a private cache and runs its tiny models on one torch thread (tests/conftest.py)."""
    return private_cache
