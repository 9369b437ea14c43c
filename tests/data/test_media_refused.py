"""Data with images, videos or audios is never trained as text with the media dropped.

The loader keeps every row's media (the multimodal encoder reads them: tests/multimodal/); a run whose
model is text-only stops before training naming the row (tests/multimodal/test_training.py); and a data
set that does not name its media columns trains its text as text, `<image>` included, as the anchor does.
"""

from __future__ import annotations

import json

from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_splits


def _register(data_dir, rows, columns):
    (data_dir / "mm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (data_dir / "dataset_info.json").write_text(json.dumps({"mm": {"file_name": "mm.jsonl", "columns": columns}}))


def test_rows_keep_their_media_for_the_encoder(data_dir):
    (data_dir / "cat.png").write_bytes(b"\x89PNG")
    rows = [{"instruction": "Hi", "output": "Hello", "images": []},
            {"instruction": "<image>What is it?", "output": "A cat.", "images": ["cat.png"]}]
    _register(data_dir, rows, {"prompt": "instruction", "response": "output", "images": "images"})
    splits = load_splits(DataArguments(dataset="mm", dataset_dir=str(data_dir)), "sft")
    assert [e.images for e in splits.train] == [(), (str(data_dir / "cat.png"),)]


def test_the_same_rows_without_the_media_column_train_as_text(data_dir):
    rows = [{"instruction": "<image>What is it?", "output": "A cat.", "images": ["cat.png"]}]
    _register(data_dir, rows, {"prompt": "instruction", "response": "output"})
    splits = load_splits(DataArguments(dataset="mm", dataset_dir=str(data_dir)), "sft")
    assert len(splits.train) == 1 and splits.train[0].images == ()
