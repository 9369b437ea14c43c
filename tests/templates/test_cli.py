"""`tunelab template list` and `tunelab template render`."""

from __future__ import annotations

import json

from template_helpers import TOKENIZERS

from tunelab.cli.main import main

QWEN = str(TOKENIZERS / "qwen2.5")


def test_list_prints_every_template_with_a_description(capsys) -> None:
    assert main(["template", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("default", "qwen3_nothink", "telechat2", "deepseekr1", "zephyr", "auto"):
        assert any(line.split()[0] == name for line in out.splitlines())
    assert "You are Qwen" not in out and "Qwen1.5 / Qwen2 / Qwen2.5" in out


def test_render_marks_trained_tokens_and_prints_the_table(capsys, tmp_path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}]}) + "\n")
    assert main(["template", "render", "qwen", "--model_name_or_path", QWEN, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "<|im_start|>assistant\n[[Hi there<|im_end|>]]\n" in out  # not a TTY: brackets
    assert '  13048    13048  "Hi"' in out and '    872     -100  "user"' in out


def test_render_auto_with_ansi_colors(capsys) -> None:
    assert main(["template", "render", "auto", "--model_name_or_path", QWEN, "--color", "always", "--no_table"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[1;32mThe capital of France is Paris.<|im_end|>\x1b[0m" in out
    assert "pos" not in out


def test_render_errors_are_user_errors(capsys, tmp_path) -> None:
    assert main(["template", "render", "qwen", "--model_name_or_path", QWEN, "--data", str(tmp_path / "none.json")]) == 2
    assert "--data: no such file" in capsys.readouterr().err
    assert main(["template", "render", "nope", "--model_name_or_path", QWEN]) == 2
    assert "unknown template 'nope'" in capsys.readouterr().err
    ds = str(TOKENIZERS / "deepseek-v3")
    assert main(["template", "render", "auto", "--model_name_or_path", ds]) == 2
    assert "has no chat template" in capsys.readouterr().err
