"""A full disk during any save ends in one message, never a traceback, and leaves no truncated file where
a reader looks: the checkpoint being written is removed (the previous one stays), the final model and
tokenizer are published atomically, so output_dir keeps what it had. The ENOSPC is injected into the
writers themselves: torch.save (OSError), safetensors (its own error type, the errno only in the text),
tokenizers (half a tokenizer.json written, then the error) and the tokenized-data cache."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from _runkit import train_in_process
from safetensors import SafetensorError

from tunelab.errors import UserError
from tunelab.utils.publish import check_folder

ENOSPC_TEXT = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


def train(model: Path, out: Path, **extra: object):
    return train_in_process(model, out, save_steps=1, **extra)


def no_partial_leftovers(out: Path) -> None:
    assert not (out / ".tunelab-staging").exists()
    assert not list(out.parent.glob(f".{out.name}.tunelab-*"))


def test_enospc_from_torch_save_while_checkpointing_is_one_message(tiny_qwen, tmp_path, monkeypatch):
    original = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if str(path).endswith("optimizer.pt") and "checkpoint-2" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    with pytest.raises(UserError) as failed:
        train(tiny_qwen, out)
    assert str(failed.value).startswith("saving checkpoint-2 failed: No space left on device (the disk is full), "
                                          f"writing {out / '.tunelab-staging' / 'checkpoint-2'}")
    assert f"the previous checkpoint {out / 'checkpoint-1'} is intact" in str(failed.value)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    no_partial_leftovers(out)
    assert not (out / "model.safetensors").exists()


def test_safetensors_disk_full_while_checkpointing_is_one_message(tiny_qwen, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise SafetensorError(ENOSPC_TEXT)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    out = tmp_path / "run"
    with pytest.raises(UserError) as failed:
        train(tiny_qwen, out)
    assert "saving checkpoint-1 failed: No space left on device (the disk is full); the partial checkpoint was " \
           "removed and no earlier checkpoint exists" in str(failed.value)
    assert not list(out.glob("checkpoint-*"))
    no_partial_leftovers(out)


@pytest.mark.parametrize("error", ["oserror", "text"])
def test_disk_full_in_the_final_save_leaves_no_truncated_file_and_resume_saves_it(tiny_qwen, tmp_path, monkeypatch,
                                                                                  error):
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    original = TokenizersBackend._save_pretrained

    def full_disk(self, save_directory, *args, **kwargs):
        if Path(save_directory).name.endswith(".tunelab-staging"):  # the final model's staging folder
            Path(save_directory, "tokenizer.json").write_text('{"version": "1.0", "trunc')
            if error == "oserror":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise Exception(ENOSPC_TEXT)  # the tokenizers library raises a plain Exception with the text
        return original(self, save_directory, *args, **kwargs)

    monkeypatch.setattr(TokenizersBackend, "_save_pretrained", full_disk)
    out = tmp_path / "run"
    with pytest.raises(UserError) as failed:
        train(tiny_qwen, out)
    message = str(failed.value)
    assert message.startswith(f"saving the final model to {out} failed: No space left on device (the disk is full). "
                              "Nothing of it was written there")
    assert f"the checkpoint of the last step, {out / 'checkpoint-2'}, is kept" in message
    for name in ("tokenizer.json", "model.safetensors", "config.json", "tunelab_manifest.json"):
        assert not (out / name).exists(), name
    no_partial_leftovers(out)

    monkeypatch.undo()  # space freed: resuming trains nothing and saves the final model
    train(tiny_qwen, out, resume_from_checkpoint=True)
    assert check_folder(out, "the run folder", hashes=True)
    assert json.loads((out / "tokenizer.json").read_text())["model"]
    assert (out / "checkpoint-2" / "tunelab_manifest.json").is_file()  # carried over with the run's files


def test_disk_full_while_writing_the_tokenized_cache_is_one_message(tiny_qwen, tmp_path, monkeypatch):
    import datasets

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full_disk)
    with pytest.raises(UserError) as failed:
        train(tiny_qwen, tmp_path / "run")
    assert "writing the tokenized cache to" in str(failed.value) and "No space left on device (the disk is full)" in str(failed.value)
    cache = Path(os.environ["TUNELAB_CACHE"]) / "tokenized"
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no half entry left


def test_a_damaged_cache_entry_is_rebuilt_with_a_message(tiny_qwen, tmp_path, caplog):
    import logging

    train(tiny_qwen, tmp_path / "first", max_steps=1)
    cache = Path(os.environ["TUNELAB_CACHE"]) / "tokenized"
    arrows = list(cache.glob("*/train/*.arrow"))
    assert arrows
    arrows[0].write_bytes(arrows[0].read_bytes()[:100])  # cut
    with caplog.at_level(logging.WARNING, logger="tunelab.data"):
        train(tiny_qwen, tmp_path / "second", max_steps=1)
    assert "is damaged" in caplog.text and "rebuilding it" in caplog.text
    assert (tmp_path / "second" / "model.safetensors").is_file()
