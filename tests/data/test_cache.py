"""The tokenized-data cache: reuse when nothing changed, rebuild on any change, `overwrite_cache`, `tokenized_path`."""

from __future__ import annotations

import json
import logging

import pytest
from _datafiles import register

from tunelab.config.data_args import DataArguments
from tunelab.data.dataset import build_dataset

ROWS = [{"instruction": f"Question {i}", "input": "", "output": f"Answer {i}"} for i in range(12)]


class CountingEncoder:
    """A stand-in for the template engine: counts its calls."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = 0

    def __call__(self, example):
        self.calls += 1
        text = "".join(m.content for m in example.messages)
        ids = self.tokenizer(text)["input_ids"]
        return {"input_ids": ids, "labels": ids}


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir / "qwen2.5"))


@pytest.fixture
def setup(data_dir, tmp_path, tokenizer):
    (data_dir / "d.json").write_text(json.dumps(ROWS))
    register(data_dir, {"mine": {"file_name": "d.json"}})
    cache = tmp_path / "cache"

    def run(**overrides):
        args = DataArguments(**{"dataset": "mine", "dataset_dir": str(data_dir), **overrides})
        encoder = CountingEncoder(tokenizer)
        splits = build_dataset(args, "sft", tokenizer, encoder, encode_id=overrides.pop("encode_id", "plain-v1"),
                               cache_dir=cache)  # fmt: skip
        return splits, encoder.calls

    return run, data_dir


def test_second_identical_run_reuses_the_cache(setup, caplog):
    run, _ = setup
    splits, calls = run()
    assert calls == 12 and len(splits.train) == 12
    assert splits.train[0]["input_ids"] == splits.train[0]["labels"]
    with caplog.at_level(logging.INFO, logger="tunelab.data"):
        again, calls = run()
    assert calls == 0
    assert "reused tokenized cache" in caplog.text
    assert again.train["input_ids"] == splits.train["input_ids"]


@pytest.mark.parametrize("change", ["file", "option", "encoder"])
def test_any_change_invalidates(setup, change):
    run, data_dir = setup
    run()
    if change == "file":
        (data_dir / "d.json").write_text(json.dumps(ROWS[:-1]))
        _, calls = run()
        assert calls == 11
    elif change == "option":
        _, calls = run(cutoff_len=512)
        assert calls == 12
    else:
        splits, calls = run(template="qwen")
        assert calls == 12


def test_unrelated_option_keeps_the_cache(setup):
    run, _ = setup
    run()
    _, calls = run(preprocessing_num_workers=1, overwrite_cache=False)
    assert calls == 0


def test_overwrite_cache_rebuilds(setup, caplog):
    run, _ = setup
    run()
    with caplog.at_level(logging.INFO, logger="tunelab.data"):
        _, calls = run(overwrite_cache=True)
    assert calls == 12
    assert "overwrite_cache: rebuilding tokenized cache" in caplog.text


def test_val_size_and_tokenized_path(setup, tmp_path):
    run, _ = setup
    path = tmp_path / "tok"
    splits, _ = run(val_size=0.25, tokenized_path=str(path))
    assert (len(splits.train), len(splits.eval)) == (9, 3)
    again, calls = run(val_size=0.25, tokenized_path=str(path), dataset="does_not_matter")
    assert calls == 0 and (len(again.train), len(again.eval)) == (9, 3)


def test_streaming_encodes_lazily(setup):
    run, _ = setup
    splits, calls = run(streaming=True, buffer_size=4)
    assert calls == 0
    assert len(list(splits.train)) == 12


def test_a_cache_entry_edited_after_it_was_written_is_rebuilt(tmp_path, caplog):
    """A valid but changed Arrow file (rows edited by hand, another run's entry copied in) is not the data's."""
    import logging

    from datasets import Dataset

    from tunelab.data.cache import TokenizedCache

    cache = TokenizedCache(tmp_path / "cache")
    cache.save("k", {"train": Dataset.from_dict({"input_ids": [[1, 2, 3]]})}, {"why": "test"})
    assert cache.load("k")["train"][0]["input_ids"] == [1, 2, 3]
    Dataset.from_dict({"input_ids": [[9, 9, 9]]}).save_to_disk(str(tmp_path / "edited"))
    for file in (tmp_path / "edited").iterdir():
        (cache.path("k") / "train" / file.name).write_bytes(file.read_bytes())
    with caplog.at_level(logging.WARNING, logger="tunelab.data"):
        assert cache.load("k") is None
    assert "changed after it was written" in caplog.text and "rebuilding it" in caplog.text
    assert not cache.path("k").exists()


def test_a_stale_tokenized_path_is_refused_naming_what_changed(setup, tmp_path):
    """The data changed after tokenized_path was written: LLaMA-Factory reuses it silently; tunelab stops."""
    from tunelab.errors import UserError

    run, data_dir = setup
    path = tmp_path / "tok"
    run(tokenized_path=str(path))
    assert (path / "tunelab_tokenized.json").is_file()
    (data_dir / "d.json").write_text(json.dumps(ROWS[:6]))
    with pytest.raises(UserError, match="was made from other inputs: the data sets .* changed.*overwrite_cache: true"):
        run(tokenized_path=str(path))
    splits, calls = run(tokenized_path=str(path), overwrite_cache=True)  # tokenized again, on request
    assert calls == 6 and len(splits.train) == 6
    again, calls = run(tokenized_path=str(path))
    assert calls == 0 and len(again.train) == 6
