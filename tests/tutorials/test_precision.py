"""Point 1 of issue 19: bf16 without a CUDA GPU runs on the CPU where torch reports native bf16 (transformers
needs `use_cpu`, which tunelab sets and logs), and is refused with the key and the fix where it does not;
fp16 without CUDA is refused as before. Seeds 002 (LLaMA Board, bf16) and 004 (`--bf16`) use bf16."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import tunelab.config.hardware as hardware
from tunelab.cli.main import main
from tunelab.config.hardware import cpu_precision_values, cpu_supports_bf16
from tunelab.errors import ProblemList

NO_GPU = pytest.mark.skipif(hardware.cuda_available(), reason="these are the rules of a machine without a CUDA GPU")
NATIVE_BF16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")


def train_args(model: Path, out: Path, **extra: object) -> list[str]:
    values = {"model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "identity",
              "max_samples": 8, "cutoff_len": 64, "per_device_train_batch_size": 4, "max_steps": 2, "logging_steps": 1,
              "save_steps": 100, "report_to": "none", "output_dir": out, "learning_rate": 1e-3, **extra}
    return [f"--{k}={v}" for k, v in values.items()]


@NO_GPU
@NATIVE_BF16
def test_bf16_on_a_bf16_cpu_sets_use_cpu_and_logs_it(caplog):
    with caplog.at_level(logging.INFO, logger="tunelab"):
        values = cpu_precision_values({"bf16": True, "output_dir": "x"})
    assert values == {"bf16": True, "output_dir": "x", "use_cpu": True}
    assert "use_cpu = True (bf16 with no GPU: this CPU has native bf16" in caplog.text
    from tunelab.config.training_build import build_training_arguments

    args = build_training_arguments(values)  # transformers accepts it: no "Your setup doesn't support bf16/gpu"
    assert args.bf16 and args.use_cpu


def test_values_without_bf16_are_unchanged():
    assert cpu_precision_values({"fp16": False, "bf16": False}) == {"fp16": False, "bf16": False}


@NO_GPU
def test_bf16_where_the_cpu_has_no_bf16_is_refused(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ProblemList) as caught:
        cpu_precision_values({"bf16": True})
    assert caught.value.message == (
        "bf16: true: there is no GPU and this CPU has no native bf16 (AVX512-BF16 or AMX), so torch cannot run bf16 "
        "here; set bf16: false (float32) on this machine.")
    assert caught.value.exit_code == 2


@NO_GPU
@pytest.mark.parametrize(("native", "alternative"), [(True, "bf16: true runs on this CPU"),
                                                     (False, "this CPU has no native bf16 either, so train in float32")])
def test_fp16_without_cuda_is_refused_with_what_runs_here(monkeypatch, native, alternative):
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: native)
    with pytest.raises(ProblemList) as caught:
        cpu_precision_values({"fp16": True})
    assert caught.value.message == (f"fp16: true needs a CUDA GPU and none was found; on this machine set fp16: false "
                                    f"({alternative}).")


@NO_GPU
@NATIVE_BF16
def test_check_passes_bf16_on_a_bf16_cpu(tiny_qwen, tmp_path, capsys):
    assert main(["check", *train_args(tiny_qwen, tmp_path / "out", bf16=True)]) == 0
    assert "config OK" in capsys.readouterr().out


@NO_GPU
def test_check_refuses_bf16_where_unsupported(tiny_qwen, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    assert main(["check", *train_args(tiny_qwen, tmp_path / "out", bf16=True)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("tunelab check: error: bf16: true: there is no GPU and this CPU has no native bf16 "
                           "(AVX512-BF16 or AMX), so torch cannot run bf16 here; set bf16: false (float32) on this "
                           "machine.")
    assert "Your setup doesn't support bf16/gpu" not in err


@NO_GPU
@NATIVE_BF16
def test_bf16_trains_on_the_cpu_with_the_values_tunelab_sets(tiny_qwen, tmp_path):
    """What recipe.py does with cpu_precision_values: the Trainer accepts bf16 and trains on the CPU."""
    from tunelab.config.parser import parse_config
    from tunelab.train.recipe import run_training

    out = tmp_path / "bf16"
    config = parse_config(train_args(tiny_qwen, out, bf16=True, finetuning_type="full"))
    config.training_values.update(cpu_precision_values(config.training_values))
    run = run_training(config)
    assert run.metrics["train_loss"] == run.metrics["train_loss"]  # a number, not NaN
    losses = [json.loads(line)["loss"] for line in (out / "trainer_log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # finite, logged each step
    assert (out / "model.safetensors").is_file()


@NO_GPU
@NATIVE_BF16
def test_train_cli_runs_bf16_on_a_bf16_cpu(tiny_qwen, tmp_path, capsys, caplog):
    """`tunelab train ... --bf16` on this CPU: it trains (seed 004's flag) and says use_cpu was set."""
    out = tmp_path / "bf16-cli"
    with caplog.at_level(logging.INFO, logger="tunelab"):
        assert main(["train", *train_args(tiny_qwen, out, bf16=True)]) == 0
    assert "use_cpu = True (bf16 with no GPU" in caplog.text
    assert (out / "adapter_model.safetensors").is_file()


@NO_GPU
def test_train_cli_refuses_bf16_where_unsupported(tiny_qwen, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    assert main(["train", *train_args(tiny_qwen, tmp_path / "out", bf16=True)]) == 2
    err = capsys.readouterr().err
    assert "bf16: true: there is no GPU and this CPU has no native bf16" in err
    assert "Your setup doesn't support bf16/gpu" not in err
