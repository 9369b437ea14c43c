"""Fixtures for data tests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty dataset_dir; the working directory moves to tmp_path so `./data` never leaks in."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ds"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def _propagate_tunelab_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's console handler stops propagation; caplog listens on the root logger."""
    monkeypatch.setattr(logging.getLogger("tunelab"), "propagate", True)
