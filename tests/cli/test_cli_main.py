"""The `tunelab` command: dispatch, lazy imports, exit codes, check output for the seeds' configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from seed_configs import SEED_000_TRAIN
from tunelab.cli.main import SUBCOMMANDS, main

# Seed 001's command line, word for word after `llamafactory-cli train`, model path swapped.
SEED_001_FLAGS = (
    "--stage sft --do_train True --model_name_or_path {model} --preprocessing_num_workers 16 "
    "--finetuning_type lora --template telechat --flash_attn auto --dataset_dir data "
    "--dataset identity,alpaca_en_demo --cutoff_len 1024 --learning_rate 3.e-5 --num_train_epochs 2.0 "
    "--max_samples 100000 --per_device_train_batch_size 1 --gradient_accumulation_steps 1 "
    "--lr_scheduler_type cosine --max_grad_norm 1.0 --logging_steps 1 --save_steps 100 --warmup_steps 0 "
    "--optim adamw_torch --packing False --report_to none --output_dir saves/telechat_7B_lora "
    "--plot_loss True --ddp_timeout 180000000 --include_num_input_tokens_seen True --lora_rank 8 "
    "--lora_alpha 16 --lora_dropout 0 --lora_target all"
)


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "chat", "webchat", "api", "export", "eval", "webui", "check", "data", "template", "env", "version"):
        assert f"  {name} " in out
    assert {c.name for c in SUBCOMMANDS} >= {"train", "check", "data", "template", "env", "version"}


def test_no_arguments_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: tunelab" in capsys.readouterr().out


def test_version(capsys):
    from tunelab import __version__

    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"tunelab {__version__}"


def test_help_and_version_import_nothing_heavy():
    code = (
        "import sys\nfrom tunelab.cli.main import main\nmain(['--help']); main(['version'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'peft') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_every_subcommand_is_built():
    import importlib

    assert [c.name for c in SUBCOMMANDS if c.module is None] == ["version"]  # answered by main() itself
    for command in SUBCOMMANDS:
        if command.module is not None:
            assert callable(importlib.import_module(command.module).main), command.name


def test_unknown_command_suggests(capsys):
    assert main(["trian"]) == 2
    assert "Did you mean `tunelab train`?" in capsys.readouterr().err


def test_entry_point_exit_code_for_user_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lora_rnk: 8\n")
    result = subprocess.run([sys.executable, "-m", "tunelab.cli.main", "check", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tunelab check: error: {cfg}: unknown key 'lora_rnk'. Did you mean 'lora_rank'?"
    assert "Traceback" not in result.stderr


def seed_000_data_dir(root: Path) -> None:
    """Seed 000's data folder: its fintech entry (alpaca with history) next to identity."""
    import json

    data = root / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({
        "fintech": {"file_name": "fintech.json",
                    "columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}},
        "identity": {"file_name": "identity.json"},
    }))
    (data / "fintech.json").write_text(json.dumps([
        {"instruction": "什么是市盈率？", "input": "", "output": "市盈率是股价与每股收益之比。",
         "history": [["你好", "你好，我是金融助手。"]]},
    ], ensure_ascii=False))
    (data / "identity.json").write_text(json.dumps([{"instruction": "你是谁？", "input": "", "output": "我是 {{name}}。"}],
                                                   ensure_ascii=False))


def test_check_seed_000_yaml_shows_the_anchor_values(tmp_path, capsys, monkeypatch):
    """The resolved config is printed even when the run would be refused; here the model folder is
    missing and, on a machine without CUDA, fp16 is refused: both are listed, exit code 2."""
    import tunelab.config.hardware as hardware

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    seed_000_data_dir(tmp_path)
    cfg = tmp_path / "train_llama3_lora_sft.yaml"
    cfg.write_text(SEED_000_TRAIN.format(fp16="true", model=tmp_path / "model"))
    assert main(["check", str(cfg)]) == 2
    captured = capsys.readouterr()
    out = captured.out
    assert f"tunelab check: error: {cfg}: 2 problems found:" in captured.err
    assert "  - fp16: true needs a CUDA GPU and none was found; on this machine set fp16: false" in captured.err
    assert f"  - model_name_or_path: '{tmp_path / 'model'}' is not an existing folder" in captured.err
    for line in (
        " * dataset: 'fintech,identity'",
        " * cutoff_len: 1024",
        " * lora_rank: 8",
        " * lora_alpha: 16",
        " * lora_dropout: 0.0",
        " * lora_target: 'q_proj,v_proj'",
        " * learning_rate: 0.0002",
        " * num_train_epochs: 10.0",
        " * lr_scheduler_type: 'cosine'",
        " * per_device_train_batch_size: 2",
        " * gradient_accumulation_steps: 8",
        " * fp16: True",
        " * template: 'llama3'",
        " * packing: False",
        " * optim: 'adamw_torch'",
        "   seed: 42",
        "   val_size: 0.0",
    ):
        assert line in out, line
    assert "use_unsloth: True   # unsloth is not installed" in out
    assert "config OK" not in out


def test_check_seed_001_flag_command(tmp_path, capsys):
    argv = SEED_001_FLAGS.format(model=tmp_path / "telechat_7B").split()
    assert main(["check", *argv, "--portable"]) == 0  # the TeleChat folder is on the tutorial's machine
    out = capsys.readouterr().out
    for line in (
        " * learning_rate: 3e-05",
        " * num_train_epochs: 2.0",
        " * dataset: 'identity,alpaca_en_demo'",
        " * lora_target: 'all'",
        " * lora_alpha: 16",
        " * template: 'telechat'",
        " * ddp_timeout: 180000000",
        " * max_samples: 100000",
        " * packing: False",
    ):
        assert line in out, line


def test_check_derives_and_marks_values(tmp_path, capsys):
    assert main(["check", "--lora_rank", "4", "--stage", "pt"]) == 0
    out = capsys.readouterr().out
    assert " + lora_alpha: 8   # default: lora_rank * 2" in out
    assert " + packing: True   # default for stage pt" in out


def test_check_all_prints_every_training_key(capsys):
    assert main(["check", "--all"]) == 0
    out = capsys.readouterr().out
    assert "   adam_beta1: 0.9" in out
    assert "   vllm_maxlen: 4096" in out


def test_check_keys_reference(capsys):
    assert main(["check", "--keys"]) == 0
    out = capsys.readouterr().out
    assert "lora_rank  [finetuning]  int  default=8" in out
    assert "seed  [training/evaluation]" in out


def test_env_reports_versions_and_devices(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "transformers", "peft", "datasets", "accelerate", "bitsandbytes", "vllm", "devices"):
        assert f"- {name}" in out or f"  - {name}" in out
    assert "no CUDA GPU" in out or "GPU 0:" in out


def test_readme_commands_exist():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "bash .ci/run" in readme
