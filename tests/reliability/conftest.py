"""Reliability tests run in their own folder with a private cache (fixtures in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated(private_cache: Path) -> Path:
    return private_cache
