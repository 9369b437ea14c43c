"""Fixtures for the distributed tests: a tiny Qwen2 model with the real Qwen2.5 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from _dist_helpers import run, run_env, train_args, tunelab


@pytest.fixture(scope="session")
def reference(tiny_qwen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process, per-device batch 8, 3 steps: the run every distributed run is compared with."""
    tmp = tmp_path_factory.mktemp("one")
    out = tmp / "out"
    done = run(tunelab("train", *train_args(tiny_qwen, out, per_device_train_batch_size=8)), run_env(tmp), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return out
