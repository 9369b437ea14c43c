"""Points 2 and 5 of issue 19: `tunelab check` runs every check `tunelab train` runs before weights load and
lists all problems in one run, each with its key or file and the fix (exit code 2); train stops on the same
list. DeepSpeed: a missing package or file is tunelab's message, and seed 004's own typo is not hidden."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from _seedkit import run

import tunelab.config.hardware as hardware

NO_DEEPSPEED = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")

# Seed 004's command after `deepspeed --num_gpus=8 src/train_bash.py`, word for word (typo `alpca_en` included).
SEED_004 = (
    "--stage sft --model_name_or_path path-to-yuan-hf-model --do_train --dataset alpca_en --finetuning_type full "
    "--output_dir yuan2_2B_full_fintuning_checkpoint --overwrite_cache --per_device_train_batch_size 4 "
    "--per_device_eval_batch_size 4 --gradient_accumulation_steps 4 --preprocessing_num_workers 16 "
    "--lr_scheduler_type cosine --logging_steps 10 --save_steps 10000 --learning_rate 5e-5 --max_grad_norm 0.5 "
    "--num_train_epochs 3 --evaluation_strategy no --bf16 --deepspeed ./zero2_ds_woloading.json --template yuan "
    "--overwrite_output_dir --cutoff_len 2048 --sft_packing --gradient_checkpointing True"
).split()


@pytest.fixture
def offline_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(hardware, "gpu_bf16_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: True)


def seed_004_problems(cwd: Path) -> list[str]:
    problems = [
        f"deepspeed: config file './zero2_ds_woloading.json' does not exist (relative paths start at the folder you "
        f"run tunelab from: {cwd}); fix the path, or use one of tunelab's examples/deepspeed/*.json.",
        "unknown data set 'alpca_en': it is not registered in",
        "model_name_or_path: 'path-to-yuan-hf-model' is not a local folder, and the hub is offline (HF_HUB_OFFLINE) "
        "with no cached copy; download it first (`hf download path-to-yuan-hf-model --local-dir "
        "models/path-to-yuan-hf-model`) and set model_name_or_path to that folder.",
    ]
    if importlib.util.find_spec("deepspeed") is None:
        problems.append("deepspeed needs the package 'deepspeed', which is not installed. Install it with: "
                        'pip install "tunelab[deepspeed]"')
    return problems


def test_check_lists_every_problem_of_seed_004(tmp_path, capsys, offline_no_gpu):
    result = run(capsys, "check", *SEED_004)
    assert result.code == 2
    expected = seed_004_problems(tmp_path)
    assert result.error.startswith(f"{len(expected)} problems found:")
    for problem in expected:
        assert f"  - {problem}" in result.error, problem
    assert "Did you mean: alpaca_en_demo" in result.error  # the typo's fix, though only the demo set is bundled
    assert "No package metadata" not in result.err and "Traceback" not in result.err


def test_train_stops_on_the_same_list(tmp_path, capsys, offline_no_gpu):
    checked = run(capsys, "check", *SEED_004)
    trained = run(capsys, "train", *SEED_004)
    assert trained.code == 2
    assert trained.error == checked.error


@NO_DEEPSPEED
def test_deepspeed_without_the_package_is_tunelabs_message(tiny_qwen, tmp_path, capsys, offline_no_gpu):
    """transformers' own text is garbled ("No package metadata was found for The 'deepspeed>=0.9.3' ...")."""
    ds = tmp_path / "ds_z2.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_batch_size": "auto"}))
    result = run(capsys, "check", "--stage", "sft", "--do_train", "true", "--model_name_or_path", tiny_qwen,
                 "--dataset", "identity", "--template", "qwen", "--output_dir", tmp_path / "out", "--deepspeed", ds)
    assert result.code == 2
    assert result.error == ("deepspeed needs the package 'deepspeed', which is not installed. Install it with: "
                            'pip install "tunelab[deepspeed]"')


def test_deepspeed_file_that_is_not_json(tiny_qwen, tmp_path, capsys):
    ds = tmp_path / "zero2.json"
    ds.write_text('{"zero_optimization": {"stage": 2},}')
    result = run(capsys, "check", "--deepspeed", ds, "--model_name_or_path", tiny_qwen, "--template", "qwen",
                 "--portable")
    assert result.code == 2
    assert result.error == f"deepspeed: {ds}:1: not valid JSON: Expecting property name enclosed in double quotes."


def test_config_mistakes_of_every_kind_are_listed_together(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("lora_rnk: 8\nlearning_rate: fast\nmask_history: true\ntrain_on_prompt: true\nstage: sft\n"
                   "dataset: identity\ntemplate: qwenn\n")
    result = run(capsys, "check", cfg, "--portable")
    assert result.code == 2
    assert result.error.splitlines() == [
        f"{cfg}: 4 problems found:",
        "  - unknown key 'lora_rnk'. Did you mean 'lora_rank'?",
        "  - key 'learning_rate' has value 'fast', expected float.",
        "  - mask_history and train_on_prompt are both true; mask_history trains the last turn only, train_on_prompt "
        "trains every token. Choose one.",
        "  - template: unknown template 'qwenn'. Did you mean 'qwen'? See `tunelab template list`.",
    ]
    assert "[tunelab] lora_alpha = " not in result.err  # a refused config does not log what it would derive


def test_qlora_and_bnb_optimizer_on_a_machine_without_cuda(tiny_qwen, tmp_path, capsys, offline_no_gpu):
    result = run(capsys, "check", "--stage", "sft", "--do_train", "true", "--model_name_or_path", tiny_qwen,
                 "--dataset", "identity", "--template", "qwen", "--output_dir", tmp_path / "out",
                 "--quantization_bit", "4", "--optim", "paged_adamw_8bit")
    assert result.code == 2
    assert result.error.splitlines()[1:] == [
        "  - quantization_bit: 4 (QLoRA, bitsandbytes) needs a CUDA GPU and none was found; drop quantization_bit "
        "to use the model in full precision on this machine.",
        "  - optim: paged_adamw_8bit (bitsandbytes) needs a CUDA GPU and none was found; use optim: adamw_torch.",
    ]


def _model_check(capsys: pytest.CaptureFixture[str], model: object, *extra: object) -> str:
    result = run(capsys, "check", "--model_name_or_path", model, "--template", "qwen", *extra)
    assert result.code == 2
    return result.error


def test_model_path_that_is_not_a_model_folder(tiny_qwen, tmp_path, capsys):
    missing = tmp_path / "Llama3-8B-Chinese-Chat"
    assert _model_check(capsys, missing) == (f"model_name_or_path: '{missing}' is not an existing folder (relative "
                                             f"paths start at {Path.cwd()}); check the path, or download the model "
                                             "there first.")
    empty = tmp_path / "empty"
    (empty / "checkpoint-100").mkdir(parents=True)
    (empty / "checkpoint-100" / "config.json").write_text("{}")
    assert _model_check(capsys, empty) == (f"model_name_or_path: '{empty}' has no config.json, so it is not a model "
                                           "folder; point it at the folder that holds config.json and the weights. "
                                           "It holds checkpoint-100/, which is one.")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_qwen)}))
    assert _model_check(capsys, adapter) == (f"model_name_or_path: '{adapter}' is a LoRA adapter folder "
                                             f"(adapter_config.json), not a model; set adapter_name_or_path: {adapter} "
                                             f"and model_name_or_path: {tiny_qwen}.")
    weights = tiny_qwen / "model.safetensors"
    assert _model_check(capsys, weights) == (f"model_name_or_path: '{weights}' is a file; give the folder that holds "
                                             "config.json and the weights.")


def test_model_with_its_own_code_needs_trust_remote_code(tmp_path, capsys):
    """Seed 001's ./telechat_7B: config.json names its own code (auto_map); without the .py files too."""
    folder = tmp_path / "telechat_7B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "telechat", "auto_map": {
        "AutoConfig": "configuration_telechat.TelechatConfig", "AutoModelForCausalLM": "modeling_telechat.TelechatForCausalLM"}}))
    (folder / "tokenizer.json").write_text("{}")
    error = _model_check(capsys, folder)
    assert error.splitlines()[1:] == [
        f"  - model_name_or_path: '{folder}' ships its own model code (auto_map in config.json) for model type "
        "'telechat'; set trust_remote_code: true if you trust that code.",
        f"  - model_name_or_path: '{folder}' names model code that is not in the folder: configuration_telechat.py, "
        "modeling_telechat.py (auto_map in config.json); copy those files from the model's repository.",
    ]
    (folder / "configuration_telechat.py").write_text("")
    (folder / "modeling_telechat.py").write_text("")
    result = run(capsys, "check", "--model_name_or_path", folder, "--trust_remote_code", "true")
    assert "auto_map" not in result.error  # both fixed; the (empty) code itself is what fails now
    assert result.error.startswith(f"model_name_or_path '{folder}': its tokenizer does not load (AttributeError: ")


def test_output_dir_with_checkpoints_is_refused_by_check_too(tiny_qwen, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "checkpoint-5" / "trainer_state.json").write_text("{}")
    argv = ["check", "--stage", "sft", "--do_train", "true", "--model_name_or_path", tiny_qwen, "--dataset",
            "identity", "--template", "qwen", "--output_dir", out]
    result = run(capsys, *argv)
    assert result.code == 2
    assert result.error == (f"output_dir {out} already holds checkpoints (latest: checkpoint-5). Choose one: "
                            "resume_from_checkpoint: true to continue that run, or overwrite_output_dir: true to start "
                            "afresh (or pick another output_dir).")
    assert run(capsys, *argv, "--overwrite_output_dir", "true").code == 0
    assert (out / "checkpoint-5").is_dir()  # check changed nothing


def test_missing_adapter_folder(tiny_qwen, tmp_path, capsys):
    adapter = "saves/LLaMA3-8B-Chinese-Chat/lora/sft"
    error = _model_check(capsys, tiny_qwen, "--adapter_name_or_path", adapter)
    assert error == (f"adapter_name_or_path: '{adapter}' does not exist; train the adapter first (its output_dir) "
                     "or fix the path.")


def test_portable_skips_this_machine_only(tmp_path, capsys, offline_no_gpu):
    result = run(capsys, "check", *SEED_004, "--portable")
    assert result.code == 2
    lines = result.error.splitlines()
    assert lines[0] == "2 problems found:"
    assert lines[1] == f"  - {seed_004_problems(tmp_path)[0]}"
    assert lines[2].startswith(f"  - {seed_004_problems(tmp_path)[1]}")


def test_bad_rows_are_listed_by_check_as_training_lists_them(tmp_path, capsys, tiny_qwen):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    (data / "mine.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "hello"},
                                                {"instruction": "", "input": "", "output": "x"}]))
    result = run(capsys, "check", "--dataset", "mine", "--model_name_or_path", tiny_qwen, "--template", "qwen")
    assert result.code == 2
    assert result.error == ("invalid examples in the data:\ndata/mine.json:2: instruction: empty content\n"
                            "1 problem found\nFix these rows, or set `skip_invalid: true` to drop them.")
    assert run(capsys, "check", "--dataset", "mine", "--model_name_or_path", tiny_qwen, "--template", "qwen",
               "--skip_invalid", "true").code == 0


def test_tokenizer_larger_than_the_embedding(tmp_path, capsys, tiny_qwen):
    model = tmp_path / "model"
    model.mkdir()
    for item in tiny_qwen.iterdir():
        (model / item.name).write_bytes(item.read_bytes())
    config = json.loads((model / "config.json").read_text())
    config["vocab_size"] = 1000
    (model / "config.json").write_text(json.dumps(config))
    result = run(capsys, "check", "--model_name_or_path", model, "--template", "qwen")
    assert result.code == 2
    assert result.error.startswith("the tokenizer has 151665 tokens but the model's embedding has 1000 rows "
                                   "(vocab_size in config.json); set resize_vocab: true")
    assert run(capsys, "check", "--model_name_or_path", model, "--template", "qwen", "--resize_vocab", "true").code == 0


def test_template_auto_needs_a_chat_template_of_the_tokenizer(tmp_path, capsys, tiny_qwen):
    """No `template:` (seed 004's Yuan has no jinja): check says which named template to set instead."""
    model = tmp_path / "base-model"
    model.mkdir()
    for item in tiny_qwen.iterdir():
        if item.name != "chat_template.jinja":
            (model / item.name).write_bytes(item.read_bytes())
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    result = run(capsys, "check", "--model_name_or_path", model)
    assert result.code == 2
    assert result.error.startswith("template: base-model has no chat template of its own, so `template: auto` "
                                   "cannot be used; set `template:` to one of: default, empty,")
