"""Data with images, videos or audios is refused with one message, never trained as text with the media dropped.

LLaMA-Factory users' multimodal data sets (an `images` column, `<image>` markers) would otherwise
train a text model on `<image>` as literal text; until multimodal fine-tuning exists the loader stops.
"""

from __future__ import annotations

import json

import pytest

from tunelab.cli.main import main
from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_splits
from tunelab.errors import UserError


def _register(data_dir, rows, columns):
    (data_dir / "mm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (data_dir / "dataset_info.json").write_text(json.dumps({"mm": {"file_name": "mm.jsonl", "columns": columns}}))


ALPACA_COLUMNS = {"prompt": "instruction", "response": "output", "images": "images"}


def test_rows_with_images_stop_the_run_naming_the_data_set_row_and_fix(data_dir):
    (data_dir / "cat.png").write_bytes(b"\x89PNG")
    rows = [{"instruction": "Hi", "output": "Hello", "images": []},
            {"instruction": "<image>What is it?", "output": "A cat.", "images": ["cat.png"]}]
    _register(data_dir, rows, ALPACA_COLUMNS)
    with pytest.raises(UserError) as info:
        load_splits(DataArguments(dataset="mm", dataset_dir=str(data_dir)), "sft")
    message = str(info.value)
    assert "data set 'mm': 1 example(s) carry images" in message
    assert f"{data_dir / 'mm.jsonl'}:2" in message
    assert "remove 'images' from the data set's `columns`" in message


def test_the_same_rows_without_the_media_column_train_as_text(data_dir):
    rows = [{"instruction": "<image>What is it?", "output": "A cat.", "images": ["cat.png"]}]
    _register(data_dir, rows, {"prompt": "instruction", "response": "output"})
    splits = load_splits(DataArguments(dataset="mm", dataset_dir=str(data_dir)), "sft")
    assert len(splits.train) == 1 and splits.train[0].images == ()


def test_data_check_reports_it_with_exit_code_2(data_dir, capsys):
    (data_dir / "a.wav").write_bytes(b"RIFF")
    _register(data_dir, [{"instruction": "<audio>Transcribe", "output": "hi", "audios": ["a.wav"]}],
              {"prompt": "instruction", "response": "output", "audios": "audios"})
    assert main(["data", "check", "mm", "--dataset_dir", str(data_dir)]) == 2
    captured = capsys.readouterr()
    assert "carry audios" in captured.out + captured.err
