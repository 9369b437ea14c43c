"""The board's generated YAML: every field maps to a known config key, and a set of field values
gives exactly the expected config, which the real parser accepts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from tunelab.config.groups import all_fields
from tunelab.config.parser import parse_config
from tunelab.errors import UserError
from tunelab.webui.fields import (
    FIELDS,
    FIXED_KEYS,
    FieldError,
    config_to_fields,
    field_problems,
    field_to_config,
    fields_of,
)
from tunelab.webui.yaml_config import build_config, command_line, parse_extra, to_yaml, write_yaml

LORA_VALUES = {
    "model_name_or_path": "tunelab/tiny-chat", "template": "chatml", "finetuning_type": "lora",
    "checkpoint_path": None, "quantization_bit": "none", "stage": "sft", "dataset_dir": "data",
    "dataset": ["identity", "alpaca_en_demo"], "learning_rate": "1e-4", "num_train_epochs": 2,
    "max_steps": 20.0, "max_samples": 50.0, "compute_type": "fp32", "cutoff_len": 256.0,
    "per_device_train_batch_size": 4.0, "gradient_accumulation_steps": 2.0, "lr_scheduler_type": "cosine",
    "max_grad_norm": 1.0, "val_size": 0.1, "warmup_steps": 0.0, "logging_steps": 1.0, "save_steps": 10.0,
    "seed": 7.0, "output_dir": "saves/tiny/lora/run1", "lora_rank": 16.0, "lora_alpha": None,
    "lora_dropout": 0.05, "lora_target": "q_proj,v_proj", "additional_target": "", "loraplus_lr_ratio": None,
    "use_rslora": True, "use_dora": False, "pissa_init": False, "create_new_adapter": False,
    # settings of other groups, which must not leak into a LoRA SFT config
    "freeze_trainable_layers": 4, "pref_beta": 0.3, "pref_loss": "ipo",
}
LORA_EXPECTED = {  # every value the user set, and none left at the config's default (sft, lora, use_dora false...)
    "do_train": True, "plot_loss": True, "report_to": "none",
    "model_name_or_path": "tunelab/tiny-chat", "template": "chatml",
    "dataset": "identity,alpaca_en_demo", "learning_rate": 1e-4,
    "num_train_epochs": 2.0, "max_steps": 20, "max_samples": 50, "cutoff_len": 256,
    "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "lr_scheduler_type": "cosine",
    "val_size": 0.1, "logging_steps": 1, "save_steps": 10,
    "seed": 7, "output_dir": "saves/tiny/lora/run1", "lora_rank": 16, "lora_dropout": 0.05,
    "lora_target": "q_proj,v_proj", "use_rslora": True,
}
# What the browser sends for a board nobody touched, every group opened: number boxes as text, the empty
# ones as "" (a gr.Number sent 0 for them: lora_alpha 0 and loraplus_lr_ratio 0 made LoRA learn nothing).
UNTOUCHED_BROWSER = {f.name: ("" if f.default is None else str(f.default)) if f.kind in ("int", "float") else f.default
                     for f in FIELDS}


def test_every_field_writes_known_config_keys() -> None:
    known = all_fields()
    for field in FIELDS:
        assert field.keys, field.name
        for key in field.keys:
            assert key in known, f"field {field.name} writes unknown key {key}"
    for job, fixed in FIXED_KEYS.items():
        assert all(key in known for key in fixed), job
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))


def test_lora_sft_values_give_the_expected_config() -> None:
    config = build_config("train", LORA_VALUES)
    assert config == LORA_EXPECTED
    assert list(config)[:3] == ["do_train", "plot_loss", "report_to"]


def test_the_yaml_round_trips_through_the_real_parser(tmp_path: Path) -> None:
    path = write_yaml(build_config("train", LORA_VALUES), tmp_path / "train.yaml")
    assert yaml.safe_load(path.read_text()) == LORA_EXPECTED
    parsed = parse_config([str(path)])
    assert parsed.explicit == LORA_EXPECTED  # every key typed as the parser types it, nothing dropped
    assert parsed.finetuning.lora_rank == 16 and parsed.finetuning.use_rslora is True
    assert parsed.data.dataset_names() == ["identity", "alpaca_en_demo"]
    assert parsed.training_values["learning_rate"] == 1e-4 and parsed.training_values["max_steps"] == 20
    assert command_line("train", path) == f"tunelab train {path}"


def test_full_finetuning_with_bf16_a_checkpoint_and_extra_keys() -> None:
    values = {**LORA_VALUES, "finetuning_type": "full", "compute_type": "bf16",
              "checkpoint_path": "saves/tiny/full/run0"}
    config = build_config("train", values, extra_yaml="packing: true\nwarmup_steps: 3\n")
    assert config["model_name_or_path"] == "saves/tiny/full/run0"  # full: the trained model replaces the base
    assert "adapter_name_or_path" not in config and config["bf16"] is True and "fp16" not in config
    assert not any(key.startswith(("lora_", "use_rslora", "pref_", "freeze_")) for key in config)
    assert config["packing"] is True and config["warmup_steps"] == 3  # extra keys are added last


def test_freeze_dpo_and_quantized_lora() -> None:
    config = build_config("train", {**LORA_VALUES, "finetuning_type": "freeze", "stage": "dpo",
                                    "dataset": ["dpo_en_demo"], "compute_type": "fp16"})
    assert {k: config[k] for k in ("finetuning_type", "stage", "freeze_trainable_layers", "pref_beta", "pref_loss",
                                   "fp16")} == {
        "finetuning_type": "freeze", "stage": "dpo", "freeze_trainable_layers": 4, "pref_beta": 0.3,
        "pref_loss": "ipo", "fp16": True}
    for left_at_default in ("freeze_trainable_modules", "pref_ftx", "freeze_extra_modules", "kto_chosen_weight"):
        assert left_at_default not in config
    lora = build_config("train", {**LORA_VALUES, "quantization_bit": "4", "checkpoint_path": "saves/a"})
    assert lora["quantization_bit"] == 4 and lora["adapter_name_or_path"] == "saves/a"


def test_eval_export_and_chat_configs() -> None:
    values = {**LORA_VALUES, "checkpoint_path": "saves/tiny/lora/run1", "eval_dataset": ["identity"],
              "eval_max_samples": 8, "eval_cutoff_len": 128, "eval_max_new_tokens": 32, "save_dir": "saves/e1",
              "export_dir": "models/m", "export_size": 2, "export_quantization_bit": "none"}
    evaluation = build_config("eval", values)
    assert evaluation == {
        "model_name_or_path": "tunelab/tiny-chat", "template": "chatml",
        "adapter_name_or_path": "saves/tiny/lora/run1", "eval_dataset": "identity",
        "cutoff_len": 128, "max_samples": 8, "max_new_tokens": 32, "save_dir": "saves/e1"}
    export = build_config("export", values)
    assert export == {
        "model_name_or_path": "tunelab/tiny-chat", "template": "chatml",
        "adapter_name_or_path": "saves/tiny/lora/run1", "export_dir": "models/m", "export_size": 2.0}
    assert build_config("chat", values) == {"model_name_or_path": "tunelab/tiny-chat", "template": "chatml",
                                            "adapter_name_or_path": "saves/tiny/lora/run1"}
    assert build_config("chat", {**values, "infer_backend": "vllm", "top_p": 0.5})["top_p"] == 0.5


def test_load_config_fills_the_fields_back() -> None:
    config = build_config("train", LORA_VALUES, extra_yaml="packing: true")
    values, extra = config_to_fields("train", config)
    assert extra == {"packing": True}
    assert values["dataset"] == ["identity", "alpaca_en_demo"] and values["compute_type"] == "fp32"
    assert build_config("train", {**LORA_VALUES, **values}, to_yaml(extra)) == config
    assert {f.name for f in fields_of("train")} == set(values)
    # a key the file leaves out loads as its default, whatever the board showed before
    assert values["gradient_accumulation_steps"] == 2 and values["lora_alpha"] is None and values["stage"] == "sft"
    shown_before = {**LORA_VALUES, "lora_alpha": 64, "pref_beta": 0.9, "stage": "dpo"}
    assert build_config("train", {**shown_before, **values}, to_yaml(extra)) == config


def test_every_field_starts_at_the_config_default() -> None:
    """A box left as it came writes nothing: its starting value is what the config gives without the key.
    Only the picks a run needs (model, template, training data) start with a value of their own."""
    picks = {"model_name_or_path", "template", "dataset"}
    for field in FIELDS:
        written = field_to_config(dataclasses.replace(field, when=None), field.default, {})
        assert written == {} or field.name in picks, (field.name, written)


def test_an_untouched_board_writes_only_the_picks() -> None:
    """Issue 22: every group opened, every box as it came: no LoRA alpha 0, no LoRA+ ratio 0, no defaults."""
    fixed = FIXED_KEYS["train"]
    assert build_config("train", UNTOUCHED_BROWSER) == {
        **fixed, "model_name_or_path": "tunelab/tiny-chat", "template": "chatml", "dataset": "identity"}
    for job in ("eval", "export", "chat"):
        assert build_config(job, UNTOUCHED_BROWSER) == {"model_name_or_path": "tunelab/tiny-chat", "template": "chatml"}
    emptied = {**UNTOUCHED_BROWSER, "lora_alpha": "  ", "loraplus_lr_ratio": "", "learning_rate": "", "max_steps": None,
               "lr_scheduler_type": None, "output_dir": " ", "lora_target": ""}
    assert build_config("train", emptied) == build_config("train", UNTOUCHED_BROWSER)
    changed = build_config("train", {**UNTOUCHED_BROWSER, "lora_alpha": "32", "use_dora": True, "learning_rate": "2e-4"})
    assert (changed["lora_alpha"], changed["use_dora"], changed["learning_rate"]) == (32, True, 2e-4)


def test_text_that_is_not_a_number_names_the_field() -> None:
    with pytest.raises(FieldError) as caught:
        build_config("train", {**UNTOUCHED_BROWSER, "learning_rate": "abc"})
    assert caught.value.message == ("Learning rate (learning_rate): 'abc' is not a number: write one (e.g. 5e-05 or "
                                    "8), or leave the box empty for the default.")
    assert caught.value.in_lang("zh").startswith("学习率 (learning_rate): 'abc' 不是数字")
    with pytest.raises(FieldError, match=r"Batch size \(per_device_train_batch_size\): '2.5' is not a whole number"):
        build_config("train", {**UNTOUCHED_BROWSER, "per_device_train_batch_size": "2.5"})
    with pytest.raises(FieldError, match="'nan' is not a number"):
        build_config("train", {**UNTOUCHED_BROWSER, "lora_alpha": "nan"})
    problems = field_problems({**UNTOUCHED_BROWSER, "learning_rate": "abc", "save_steps": "1e9x"})
    assert [p.field for p in problems] == ["learning_rate", "save_steps"]
    assert field_problems({**UNTOUCHED_BROWSER, "export_size": "big"}, "train") == []  # another tab's box
    assert [p.field for p in field_problems({**UNTOUCHED_BROWSER, "export_size": "big"}, "export")] == ["export_size"]
    from tunelab.webui.components import boxes_problem

    both = boxes_problem({**UNTOUCHED_BROWSER, "learning_rate": "abc", "save_steps": "x"}, "train", "zh")
    assert both.count("⚠️") == 2 and "学习率 (learning_rate): 'abc' 不是数字" in both and "(save_steps): 'x'" in both
    assert boxes_problem(UNTOUCHED_BROWSER, "train", "en") is None
    assert build_config("train", {**UNTOUCHED_BROWSER, "max_steps": " 12 "})["max_steps"] == 12


def test_bad_extra_yaml_is_a_user_error() -> None:
    with pytest.raises(UserError, match="mapping"):
        parse_extra("- a\n- b")
    with pytest.raises(UserError, match="not valid YAML"):
        parse_extra("a: [")
    assert parse_extra("  ") == {}


def test_a_picked_run_folder_decides_adapter_or_model(tmp_path: Path) -> None:
    adapter, full = tmp_path / "lora_run", tmp_path / "full_run"
    adapter.mkdir()
    full.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (full / "config.json").write_text("{}")
    as_lora = {**LORA_VALUES, "finetuning_type": "lora"}
    assert build_config("chat", {**as_lora, "checkpoint_path": str(full)})["model_name_or_path"] == str(full)
    chat = build_config("chat", {**as_lora, "finetuning_type": "full", "checkpoint_path": str(adapter)})
    assert chat["adapter_name_or_path"] == str(adapter) and chat["model_name_or_path"] == "tunelab/tiny-chat"


def test_jobs_get_fresh_folders_when_left_empty(tmp_path: Path) -> None:
    from tunelab.webui.jobs import job_config

    train, train_dir = job_config("train", {"finetuning_type": "full"}, "max_steps: 3", tmp_path)
    assert train_dir == Path(train["output_dir"]) and train_dir.parent == tmp_path / "tiny-chat" / "full"
    assert train_dir.name.startswith("train_") and train["max_steps"] == 3
    evaluation, eval_dir = job_config("eval", {"eval_dataset": ["identity"]}, None, tmp_path)
    assert Path(evaluation["save_dir"]).parent == tmp_path / "tiny-chat" / "lora"
    assert eval_dir.parent == tmp_path / "jobs" and eval_dir != Path(evaluation["save_dir"])
    export, _ = job_config("export", {"export_dir": "models/m"}, None, tmp_path)
    assert export["export_dir"] == "models/m"


@pytest.mark.parametrize("job", ["train", "eval", "chat", "export"])
def test_the_top_bar_trust_remote_code_reaches_every_job_only_when_ticked(job) -> None:
    """Issue 25: a model with its own code needs trust_remote_code in every job the board runs."""
    values = {**LORA_VALUES, "export_dir": "models/m", "trust_remote_code": True}
    assert build_config(job, values)["trust_remote_code"] is True
    assert "trust_remote_code" not in build_config(job, {**values, "trust_remote_code": False})
    fields, _ = config_to_fields(job, {"trust_remote_code": True})
    assert fields["trust_remote_code"] is True


def test_the_board_reads_configs_with_the_bounded_reader(tmp_path) -> None:
    """A billion-laughs document in the extra-keys box or a loaded file is one message, not 6 GB of memory."""
    from tunelab.webui.yaml_config import parse_extra, read_yaml

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    with pytest.raises(UserError, match="alias"):
        parse_extra(bomb)
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(UserError, match="alias"):
        read_yaml(tmp_path / "bomb.yaml")
