"""End-to-end training on a tiny Qwen2 model with the real Qwen2.5 tokenizer: every tuning method,
both stages, the run outputs, resume and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunelab.cli.main import main
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training


def base_args(model: Path, out: Path, **extra: object) -> list[str]:
    values = {
        "model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen",
        "dataset": "identity", "max_samples": 16, "cutoff_len": 96, "per_device_train_batch_size": 4,
        "learning_rate": 1e-2, "max_steps": 8, "logging_steps": 1, "save_steps": 100, "report_to": "none",
        "output_dir": out, "lr_scheduler_type": "constant", "seed": 0,
    }
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def losses(out: Path) -> list[float]:
    lines = (out / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def changed_parameters(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach().cpu().float())}


def initial_state(model_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return {n: p.detach().clone().float() for n, p in model.named_parameters()}


def base_name(peft_name: str) -> str:
    return peft_name.replace("base_model.model.", "").replace(".base_layer", "")


def test_lora_sft_trains_only_adapters_and_writes_outputs(tiny_qwen, tmp_path):
    out = tmp_path / "lora"
    run = run_training(parse_config(base_args(tiny_qwen, out, plot_loss=True)))
    curve = losses(out)
    assert len(curve) == 8 and curve[-1] < curve[0]
    trained = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    # every linear layer but the head got an adapter (lora_target: all)
    config = json.loads((out / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert config["r"] == 8 and config["lora_alpha"] == 16
    before = initial_state(tiny_qwen)
    frozen = {base_name(n): p for n, p in run.model.named_parameters() if "lora_" not in n}
    assert all(torch.equal(before[n], p.detach().float()) for n, p in frozen.items())
    # run outputs
    for name in ("adapter_model.safetensors", "tokenizer.json", "tunelab_config.yaml", "trainer_log.jsonl",
                 "train_results.json", "all_results.json", "training_loss.png"):
        assert (out / name).is_file(), name
    record = json.loads((out / "trainer_log.jsonl").read_text().splitlines()[0])
    for key in ("step", "loss", "learning_rate", "epoch", "tokens_seen", "tokens_per_second", "elapsed_seconds",
                "remaining_seconds"):
        assert key in record
    results = json.loads((out / "train_results.json").read_text())
    assert results["num_input_tokens_seen"] > 0 and "train_loss" in results
    assert (out / "training_loss.png").read_bytes()[:4] == b"\x89PNG"
    # the resolved config re-runs as is
    again = parse_config([str(out / "tunelab_config.yaml")])
    assert again.finetuning.lora_alpha == 16 and again.data.packing is False


def test_saved_tokenizer_renders_like_the_original(tiny_qwen, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "tok"
    run_training(parse_config(base_args(tiny_qwen, out, max_steps=1)))
    original, saved = AutoTokenizer.from_pretrained(tiny_qwen), AutoTokenizer.from_pretrained(out)
    messages = [{"role": "user", "content": "Who are you?"}]
    assert saved.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        original.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_full_finetuning_changes_every_parameter(tiny_qwen, tmp_path):
    run = run_training(parse_config(base_args(tiny_qwen, tmp_path / "full", finetuning_type="full", learning_rate=1e-3,
                                              max_steps=3)))
    before = initial_state(tiny_qwen)
    assert changed_parameters(before, run.model) == set(before)
    assert (tmp_path / "full" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("extra", "expected_layers"),
    [({"freeze_trainable_layers": 1}, {1}), ({"freeze_trainable_layers": -1}, {0})],
)
def test_freeze_trains_the_chosen_layers_only(tiny_qwen, tmp_path, extra, expected_layers):
    run = run_training(parse_config(base_args(tiny_qwen, tmp_path / "freeze", finetuning_type="freeze",
                                              learning_rate=1e-3, max_steps=3, **extra)))
    before = initial_state(tiny_qwen)
    changed = changed_parameters(before, run.model)
    assert changed == {n for n in before if any(f"layers.{i}." in n for i in expected_layers)}


def test_freeze_modules_and_extra_modules(tiny_qwen, tmp_path):
    run = run_training(parse_config(base_args(
        tiny_qwen, tmp_path / "freeze2", finetuning_type="freeze", freeze_trainable_layers=1,
        freeze_trainable_modules="mlp", freeze_extra_modules="norm", learning_rate=1e-3, max_steps=3,
    )))
    before = initial_state(tiny_qwen)
    assert changed_parameters(before, run.model) == {n for n in before if "layers.1.mlp." in n} | {"model.norm.weight"}


@pytest.mark.parametrize(
    ("extra", "config_key", "value"),
    [
        ({"use_dora": True}, "use_dora", True),
        ({"use_rslora": True}, "use_rslora", True),
        ({"pissa_init": True, "pissa_iter": 2}, "init_lora_weights", "pissa_niter_2"),
        ({"lora_target": "q_proj,v_proj", "lora_rank": 4}, "r", 4),
    ],
)
def test_lora_variants_train_and_record_their_method(tiny_qwen, tmp_path, extra, config_key, value):
    out = tmp_path / "variant"
    run_training(parse_config(base_args(tiny_qwen, out, **extra)))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config[config_key] == value
    curve = losses(out)
    assert curve[-1] < curve[0]


def test_loraplus_gives_lora_b_a_larger_learning_rate(tiny_qwen, tmp_path):
    from tunelab.train.trainers.base import TunelabTrainer

    captured = {}
    original = TunelabTrainer._loraplus_optimizer

    def spy(self):
        optimizer = original(self)
        captured["lrs"] = [group["lr"] for group in optimizer.param_groups]
        return optimizer

    TunelabTrainer._loraplus_optimizer = spy
    try:
        run_training(parse_config(base_args(tiny_qwen, tmp_path / "lp", loraplus_lr_ratio=16.0, max_steps=2)))
    finally:
        TunelabTrainer._loraplus_optimizer = original
    assert captured["lrs"][:2] == [pytest.approx(1e-2), pytest.approx(0.16)]


def test_pretraining_packs_plain_text_and_learns(tiny_qwen, tmp_path):
    out = tmp_path / "pt"
    run = run_training(parse_config(base_args(tiny_qwen, out, stage="pt", dataset="c4_demo", cutoff_len=64,
                                              max_samples=24, max_steps=6)))
    curve = losses(out)
    assert curve[-1] < curve[0]
    assert run.metrics["num_input_tokens_seen"] > 0


def test_resume_continues_the_loss_curve_exactly(tiny_qwen, tmp_path):
    import shutil

    full = tmp_path / "full_run"
    run_training(parse_config(base_args(tiny_qwen, full, max_steps=6, save_steps=3)))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-3", resumed / "checkpoint-3")
    run_training(parse_config(base_args(tiny_qwen, resumed, max_steps=6, save_steps=3, resume_from_checkpoint=True)))
    assert losses(resumed) == pytest.approx(losses(full)[3:], rel=1e-4, abs=1e-6)


def test_existing_checkpoints_need_a_choice(tiny_qwen, tmp_path, capsys):
    out = tmp_path / "again"
    run_training(parse_config(base_args(tiny_qwen, out, max_steps=2, save_steps=1)))
    assert main(["train", *base_args(tiny_qwen, out, max_steps=2)]) == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints (latest: checkpoint-2)" in err
    assert "resume_from_checkpoint: true" in err and "overwrite_output_dir: true" in err
    assert main(["train", *base_args(tiny_qwen, out, max_steps=2, overwrite_output_dir=True)]) == 0


def test_eval_split_and_prediction_outputs(tiny_qwen, tmp_path):
    out = tmp_path / "pred"
    run = run_training(parse_config(base_args(
        tiny_qwen, out, val_size=4, do_predict=True, predict_with_generate=True, max_new_tokens=8, max_steps=2,
    )))
    assert "eval_loss" in run.metrics
    predictions = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and set(predictions[0]) == {"prompt", "predict", "label"}
    assert "<|im_start|>user" in predictions[0]["prompt"] and predictions[0]["label"]
    results = json.loads((out / "predict_results.json").read_text())
    assert set(results) >= {"predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"}


def test_tensorboard_events_in_logging_dir(tiny_qwen, tmp_path):
    pytest.importorskip("tensorboard")
    logs = tmp_path / "tb"
    run_training(parse_config(base_args(tiny_qwen, tmp_path / "tbrun", max_steps=2, report_to="tensorboard",
                                        logging_dir=logs)))
    assert list(logs.rglob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"quantization_bit": 4}, "needs a CUDA GPU"),
        ({"fp16": True}, "fp16: true needs a CUDA GPU and none was found; on this machine set fp16: false"),
        ({"optim": "paged_adamw_8bit"}, "optim: paged_adamw_8bit (bitsandbytes) needs a CUDA GPU"),
        ({"lora_target": "q_proj,qkv"}, "lora_target: qkv is not a linear layer of this model"),
        ({"freeze_trainable_layers": 5, "finetuning_type": "freeze"}, "freeze_trainable_layers=5 but the model has 2 layers"),
        ({"dataset": "dpo_en_demo"}, "data set 'dpo_en_demo' is preference data (`ranking: true`); stage sft cannot use it"),
        ({"dataset": "identiy"}, "identiy"),
    ],
)
def test_clear_refusals_exit_2(tiny_qwen, tmp_path, capsys, extra, message):
    if (extra.get("quantization_bit") or extra.get("optim")) and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert main(["train", *base_args(tiny_qwen, tmp_path / "bad", **extra)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_model_offline_says_so(tmp_path, capsys):
    assert main(["train", *base_args(Path("some-org/some-model"), tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "model_name_or_path: 'some-org/some-model' is not a local folder, and the hub is offline" in err
