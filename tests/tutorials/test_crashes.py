"""Point 7 of issue 19: no crash where a tutorial step has an answer. `new_special_tokens` adds tokens
(transformers 5 renamed the argument tunelab passed); `tunelab template render` finds the built-in model
`train` builds, takes --trust_remote_code, and never shows transformers' interactive [y/N] prompt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _seedkit import run

from tunelab.config.model_args import ModelArguments
from tunelab.model.load import load_tokenizer
from tunelab.testing import fixture_tokenizer_path


def test_new_special_tokens_are_added_next_to_the_existing_ones():
    path = str(fixture_tokenizer_path("qwen2.5"))
    plain = load_tokenizer(ModelArguments(model_name_or_path=path))
    tokenizer = load_tokenizer(ModelArguments(model_name_or_path=path, new_special_tokens="<|eot_id|>,<think_x>"))
    assert len(tokenizer) == len(plain) + 2
    assert len(tokenizer.encode("<|eot_id|><think_x>", add_special_tokens=False)) == 2
    assert set(plain.all_special_tokens) < set(tokenizer.all_special_tokens)  # none replaced
    assert tokenizer.decode(tokenizer.encode("hi<|eot_id|>", add_special_tokens=False), skip_special_tokens=True) == "hi"


def test_train_with_new_special_tokens_exits_0(tiny_qwen, tmp_path, capsys):
    out = tmp_path / "out"
    result = run(capsys, "train", "--stage", "sft", "--do_train", "true", "--model_name_or_path", tiny_qwen,
                 "--dataset", "identity", "--template", "qwen", "--output_dir", out, "--max_samples", "4",
                 "--cutoff_len", "48", "--max_steps", "1", "--report_to", "none", "--new_special_tokens", "<tool_x>",
                 "--resize_vocab", "true")
    assert result.code == 0, result.err
    assert "added 1 special token(s) to the tokenizer: <tool_x>" in result.err


def test_template_render_finds_the_builtin_model(capsys):
    result = run(capsys, "template", "render", "chatml", "--model_name_or_path", "tunelab/tiny-chat", "--no_table")
    assert result.code == 0, result.err
    assert "=== example 1: template 'chatml'" in result.out
    assert "[[The capital of France is Paris.<|im_end|>]]" in result.out


def test_template_render_with_code_shipped_by_the_model_asks_nothing(tmp_path):
    folder = tmp_path / "telechat_7B"
    folder.mkdir()
    for item in fixture_tokenizer_path("qwen2.5").iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(auto_map={"AutoTokenizer": ["tokenization_telechat.TelechatTokenizer", None]},
                  tokenizer_class="TelechatTokenizer")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tunelab.cli.main", "template", "render", "qwen",
                           "--model_name_or_path", str(folder), "--no_table"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"tunelab template: error: model_name_or_path '{folder}' ships its own tokenizer code; set "
        "trust_remote_code: true if you trust that code (it runs on this machine).")
    assert "[y/N]" not in done.stdout + done.stderr
    help_text = subprocess.run([sys.executable, "-m", "tunelab.cli.main", "template", "render", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    assert "--trust_remote_code" in help_text and "tunelab/tiny-chat" in help_text


def test_the_hub_links_of_a_local_folder_are_dropped(tmp_path, capsys):
    """transformers says "Checkout 'https://huggingface.co/./telechat_7B/tree/main'" for a local folder."""
    from tunelab.model.load import _load_error

    error = _load_error("model", "./telechat_7B", OSError(
        "./telechat_7B does not appear to have a file named configuration_telechat.py. Checkout "
        "'https://huggingface.co/./telechat_7B/tree/main' for available files."))
    assert "could not load" in error.message or "not an existing folder" in error.message
    assert "huggingface.co" not in error.message and "hf.co" not in error.message
    Path("telechat_7B").mkdir()
    error = _load_error("model", "./telechat_7B", OSError(
        "./telechat_7B does not appear to have a file named configuration_telechat.py. Checkout "
        "'https://huggingface.co/./telechat_7B/tree/main' for available files."))
    assert error.message == ("could not load the model from './telechat_7B': ./telechat_7B does not appear to have a "
                             "file named configuration_telechat.py.")
