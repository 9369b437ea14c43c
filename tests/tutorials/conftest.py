"""Fixtures for the tutorial walk-throughs (issue 19): tiny stand-ins for the seeds' models, the seeds'
own data folders and config files, a private cache and working folder per test."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _seedkit import LLAMA3_TOKENS

from tunelab.testing import TinyModelSpec, build_tiny_model, fixture_tokenizer_path


@pytest.fixture(autouse=True)
def _isolated(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in its own working folder and cache; tunelab's log lines reach caplog."""
    monkeypatch.setattr(logging.getLogger("tunelab"), "propagate", True)
    return private_cache


@pytest.fixture(scope="session")
def llama3_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-3-style tokenizer: Qwen2.5's vocabulary plus Llama 3's control tokens, bos / eos as Llama 3's."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixture_tokenizer_path("qwen2.5"))
    tokenizer.add_special_tokens({"extra_special_tokens": list(LLAMA3_TOKENS)}, replace_extra_special_tokens=False)
    tokenizer.bos_token, tokenizer.eos_token = "<|begin_of_text|>", "<|eot_id|>"
    out = tmp_path_factory.mktemp("llama3-tokenizer")
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama3(llama3_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 000's Llama3-8B-Chinese-Chat in miniature: a Llama architecture with Llama 3's control tokens."""
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=True)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama3"), family="llama", tokenizer=llama3_tokenizer_dir,
                            spec=spec)


@pytest.fixture(scope="session")
def tiny_llama_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama architecture with Qwen2.5's tokenizer, which has none of Llama 3's control tokens."""
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=True)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-plain"), family="llama", tokenizer="qwen2.5",
                            spec=spec)
