"""Fixtures for the distributed tests: a tiny Qwen2 model with the real Qwen2.5 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.testing import TinyModelSpec, build_tiny_model


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=True)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen"), family="qwen2", spec=spec)
