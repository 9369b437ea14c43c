"""`tunelab check` is the one check before anything starts (the board's Start buttons run the same code):
every value below is refused with exit 2 and a message naming its key, before any weight loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.cli.main import main

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def _check(capsys: pytest.CaptureFixture[str], *overrides: str) -> tuple[int, str]:
    code = main(["check", str(QUICKSTART), *overrides])
    return code, capsys.readouterr().err


# (overrides, the key the message names, a phrase of the message)
REFUSED: list[tuple[tuple[str, ...], str, str]] = [
    (("learning_rate=-5",), "learning_rate", "out of range"),
    (("learning_rate=0",), "learning_rate", "out of range"),
    (("per_device_train_batch_size=0",), "per_device_train_batch_size", "out of range"),
    (("gradient_accumulation_steps=0",), "gradient_accumulation_steps", "out of range"),
    (("finetuning_type=lora", "lora_rank=0"), "lora_rank", "out of range"),
    (("finetuning_type=lora", "lora_alpha=0"), "lora_alpha", "out of range"),
    (("finetuning_type=lora", "loraplus_lr_ratio=0"), "loraplus_lr_ratio", "out of range"),
    (("finetuning_type=lora", "lora_dropout=1"), "lora_dropout", "out of range"),
    (("num_train_epochs=0",), "num_train_epochs", "out of range"),
    (("max_steps=0",), "max_steps", "out of range"),
    (("model_name_or_path=/nonexistent/model",), "model_name_or_path", "is not an existing folder"),
    (("model_name_or_path=/",), "model_name_or_path", "has no config.json, so it is not a model folder"),
    (("stage=dpo",), "dataset", "'identity' is not preference data"),
    (("stage=rm",), "dataset", "'identity' is not preference data"),
    (("stage=kto",), "kto_tag", "missing required field"),
    (("stage=ppo",), "reward_model", "needs reward_model"),
    (("template=nosuch",), "template", "unknown template 'nosuch'"),
    (("do_train=false", "export_dir=A_FILE"), "export_dir", "is a file; choose a folder for the exported model"),
    (("do_train=false", "export_dir=A_FILE/merged"), "export_dir", "which is a file"),
    (("do_train=false", "save_dir=A_FILE"), "save_dir", "is a file"),
    (("do_train=false", "export_dir=out", "export_quantization_bit=4"), "export_quantization_bit", "needs a CUDA GPU"),
]


@pytest.mark.parametrize(("overrides", "key", "phrase"), REFUSED, ids=[" ".join(o) for o, _, _ in REFUSED])
def test_a_bad_value_is_refused_naming_its_key(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, overrides: tuple[str, ...],
                                               key: str, phrase: str) -> None:
    monkeypatch.chdir(tmp_path)  # relative output folders land here
    (tmp_path / "A_FILE").write_text("a file, not a folder")
    code, err = _check(capsys, *overrides)
    assert code == 2
    problem = next((line for line in err.splitlines() if phrase in line), None)
    assert problem is not None, err
    assert key in problem
    assert "Traceback" not in err


def test_the_same_config_without_them_is_ok(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(QUICKSTART), "finetuning_type=lora"]) == 0
    assert "config OK" in capsys.readouterr().out
