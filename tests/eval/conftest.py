"""Fixtures of the evaluation tests: one tiny Qwen2 model (real Qwen2.5 tokenizer) per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunelab.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("eval_model") / "tiny")


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def qwen_template(tokenizer):
    from tunelab.data.templates import get_template

    return get_template("qwen", tokenizer)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
