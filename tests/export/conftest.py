"""Fixtures for export tests: tiny Qwen2 / Llama models with real tokenizers, LoRA and DoRA adapters
with non-zero weights (so merging changes the model), a private cache and working folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _exportkit import export_args, write_adapter

from tunelab.config.parser import parse_config
from tunelab.config.resolved import Config
from tunelab.export.run import ExportOptions, ExportResult, run_export
from tunelab.testing import TinyModelSpec, build_tiny_model

UNTIED = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=False)


@pytest.fixture(scope="session")
def qwen_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen2 with untied embeddings: two 19 MB matrices, so small export_size values give several shards."""
    return build_tiny_model(tmp_path_factory.mktemp("qwen-base"), family="qwen2", spec=UNTIED)


@pytest.fixture(scope="session")
def llama_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama with the DeepSeek-V3 tokenizer (which has no chat template of its own), tied embeddings."""
    return build_tiny_model(tmp_path_factory.mktemp("llama-base"), family="llama")


@pytest.fixture(scope="session")
def qwen_adapters(qwen_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen-adapters")
    return {
        "lora": write_adapter(qwen_base, root / "lora", seed=1),
        "lora2": write_adapter(qwen_base, root / "lora2", seed=2, targets=("q_proj", "o_proj", "up_proj")),
        "dora": write_adapter(qwen_base, root / "dora", seed=3, dora=True),
    }


@pytest.fixture(autouse=True)
def private_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_config() -> Callable[..., Config]:
    def build(base: Path, out: Path, adapters: list[Path] | None = None, export_size: float | None = None,
              **extra: object) -> Config:
        config = parse_config(export_args(base, out, adapters, **extra))
        if export_size is not None:
            config.export.export_size = export_size  # type: ignore[assignment]  # fractional GB, see docs/export.md
        return config

    return build


@pytest.fixture(scope="session")
def lora_export(qwen_base: Path, qwen_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """One full export shared by the tests that read its files: LoRA on Qwen2, verified, GGUF f16, Modelfile."""
    out = tmp_path_factory.mktemp("lora-export") / "merged"
    config = parse_config(export_args(qwen_base, out, [qwen_adapters["lora"]]))
    return run_export(config, ExportOptions(gguf="f16"))
