"""Fixtures for data tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty dataset_dir; the working directory moves to tmp_path so `./data` never leaks in."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ds"
    folder.mkdir()
    return folder
