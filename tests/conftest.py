"""Shared test fixtures: paths to `../shared` (tokenizers, chat templates) and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelab.testing import TinyModelSpec, build_tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
TOKENIZERS = FIXTURES / "tokenizers"
CHAT_TEMPLATES = FIXTURES / "chat_templates"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist (scripts/test.sh runs one worker per core) each worker gets its share of the cores:
    two workers with two torch threads each on two cores run tiny models slower than one worker alone
    (contended threads; see `one_torch_thread`). Child processes (`tunelab train` runs) inherit the share."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return
    share = str(max(1, (os.cpu_count() or 1) // workers))
    os.environ["OMP_NUM_THREADS"] = share
    os.environ["MKL_NUM_THREADS"] = share
    import torch

    torch.set_num_threads(int(share))


_share_the_cores_between_workers()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return TOKENIZERS


@pytest.fixture(scope="session")
def chat_template_dir() -> Path:
    return CHAT_TEMPLATES


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 (2 layers, hidden 32) with the real Qwen2.5 tokenizer, built once per session."""
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=True)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen"), family="qwen2", spec=spec)


@pytest.fixture(autouse=True)
def _fresh_log_once() -> None:
    """Each test is a new run: what tunelab logs once per run (tunelab.utils.logging.log_once) is logged again."""
    from tunelab.utils.logging import reset_log_once

    reset_log_once()


@pytest.fixture(scope="session")
def reward_model(tiny_qwen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ppo's reward model for equivalence tests: the tiny Qwen2 with a seeded random value head, laid out as
    a `stage: rm` output folder."""
    import shutil

    import torch

    from tunelab.model.value_head import ValueHead, save_value_head

    folder = tmp_path_factory.mktemp("reward-model") / "rm"
    shutil.copytree(tiny_qwen, folder)
    torch.manual_seed(1)
    save_value_head(ValueHead(32), folder)
    return folder


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run several times faster on one intra-op thread than on two contended ones
    (see docs/benchmarks.md); restored afterwards so other test folders keep their setting.
    Folders that serve or generate with tiny models request it for every test (autouse in their conftest)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private tokenized-data / built-in-model cache, and the test's own working folder (no ./data).

    Folders whose tests train request it for every test with an autouse fixture in their conftest.
    """
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"
