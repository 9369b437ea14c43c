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
    """--portable: the examples are written for GPU machines with the models downloaded; everything that
    does not depend on the machine (keys, values, DeepSpeed files, templates, data sets) is checked."""
    monkeypatch.chdir(REPO)  # example paths (deepspeed config) are relative to the repository root
    assert main(["check", str(path), "--portable"]) == 0
    assert "config OK: no weights were loaded (--portable: this machine was not checked)." in capsys.readouterr().out


def test_gpu_example_checked_on_this_machine_lists_what_it_lacks(monkeypatch, capsys):
    """Without --portable, check answers "would `tunelab train` start here": on a machine without CUDA and
    offline, the fp16 QLoRA example is refused with each reason and its fix, in one run."""
    import tunelab.config.hardware as hardware
    import tunelab.model.folder as folder

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(folder, "_cached_on_hub", lambda repo_id, cache_dir: False)
    assert main(["check", str(REPO / "examples/train/qwen2.5_qlora_sft.yaml")]) == 2
    err = capsys.readouterr().err
    assert "3 problems found:" in err
    assert "  - fp16: true needs a CUDA GPU and none was found; on this machine set fp16: false" in err
    assert "  - quantization_bit: 4 (QLoRA, bitsandbytes) needs a CUDA GPU and none was found" in err
    assert "  - model_name_or_path: 'Qwen/Qwen2.5-1.5B-Instruct' is not a local folder, and the hub is offline" in err
