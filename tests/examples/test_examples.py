"""Every shipped example config passes `tunelab check` (no weights are loaded, so hub ids are fine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))


def test_examples_cover_the_seeds():
    names = {p.relative_to(REPO / "examples").as_posix() for p in EXAMPLES}
    assert {"quickstart.yaml", "train/llama3_lora_sft.yaml", "train/qwen2.5_lora_sft.yaml",
            "train/qwen2.5_qlora_sft.yaml", "train/chatglm3_lora_sft.yaml", "train/baichuan2_lora_sft.yaml",
            "train/yuan2_full_sft_ds2.yaml", "train/telechat_lora_sft.yaml", "merge/llama3_lora_sft.yaml",
            "merge/telechat_lora_sft.yaml", "inference/telechat_lora_sft.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(REPO / "examples").as_posix())
def test_example_passes_check(path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # example paths (deepspeed config) are relative to the repository root
    assert main(["check", str(path)]) == 0
    assert "config OK" in capsys.readouterr().out
