"""Tiny multimodal models for the tests of this folder, built once per session (tunelab/testing_multimodal.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tunelab.testing_multimodal import tiny_vlm_path

SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


@pytest.fixture(scope="session")
def vlm(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`vlm("qwen2_vl")`: the folder of that family's tiny model, built on first use."""
    root = tmp_path_factory.mktemp("tiny-vlms")
    return lambda family: tiny_vlm_path(family, root)


def write_dataset(folder: Path, name: str, rows: list[dict], media_column: str = "images") -> Path:
    """A sharegpt data set with a media column, registered in folder/dataset_info.json as the anchor's mllm_demo."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")
    info_path = folder / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info[name] = {"file_name": f"{name}.json", "formatting": "sharegpt",
                  "columns": {"messages": "messages", media_column: media_column}, "tags": SHAREGPT_TAGS}
    info_path.write_text(json.dumps(info), encoding="utf-8")
    return folder
