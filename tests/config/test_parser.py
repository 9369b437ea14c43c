"""The config parser: sources and their order, typing, legacy keys, derived values, contradictions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tunelab.config.parser import parse_config
from tunelab.errors import UserError


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_sources_merge_in_order_file_then_overrides_then_flags(tmp_path):
    cfg = write(tmp_path, "learning_rate: 5e-5\nlora_rank: 4\nnum_train_epochs: 1\n")
    config = parse_config([cfg, "learning_rate=1e-4", "lora_rank=16", "--lora_rank", "32"])
    assert config.training_values["learning_rate"] == pytest.approx(1e-4)
    assert config.finetuning.lora_rank == 32
    assert config.training_values["num_train_epochs"] == 1.0
    assert config.finetuning.lora_alpha == 64  # derived from the final rank


def test_yaml_scientific_notation_without_dot_becomes_float(tmp_path):
    # PyYAML reads `5e-5` as a string; the field type makes it a float.
    config = parse_config([write(tmp_path, "learning_rate: 5e-5\n")])
    assert isinstance(config.training_values["learning_rate"], float)
    assert config.training_values["learning_rate"] == pytest.approx(5e-5)


def test_bare_flag_means_true_and_explicit_booleans_parse():
    config = parse_config(["--fp16", "--plot_loss", "--do_train", "True", "--dataset", "a", "--packing", "False", "--overwrite_cache"])
    assert config.training_values["fp16"] is True
    assert config.finetuning.plot_loss is True
    assert config.training_values["do_train"] is True
    assert config.data.packing is False
    assert config.data.overwrite_cache is True


def test_json_config_file(tmp_path):
    config = parse_config([write(tmp_path, '{"lora_rank": 4, "stage": "pt"}', "cfg.json")])
    assert config.finetuning.lora_rank == 4
    assert config.finetuning.stage == "pt"
    assert config.data.packing is True  # pre-training packs by default, as the anchor does


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    cfg = write(tmp_path, "learning_rat: 1e-4\n")
    with pytest.raises(UserError) as info:
        parse_config([cfg])
    assert str(info.value) == f"{cfg}: unknown key 'learning_rat'. Did you mean 'learning_rate'?"


def test_unknown_flag_on_command_line():
    with pytest.raises(UserError, match=r"command line: unknown key 'lora_rnk'\. Did you mean 'lora_rank'\?"):
        parse_config(["--lora_rnk", "8"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--lora_rank", "eight"], "key 'lora_rank' has value 'eight', expected int."),
        (["--learning_rate", "fast"], "key 'learning_rate' has value 'fast', expected float."),
        (["--fp16", "maybe"], "key 'fp16' has value 'maybe', expected bool."),
        (["--finetuning_type", "lora2"], "key 'finetuning_type' has value 'lora2', expected one of 'lora', 'freeze', 'full'. Did you mean 'lora'?"),
        (["--stage", "sfft"], "Did you mean 'sft'?"),
        (["--lr_scheduler_type", "cosin"], "Did you mean 'cosine'?"),
        (["--cutoff_len"], "key 'cutoff_len' has value (no value), expected int."),
    ],
)
def test_wrong_types_name_key_value_and_type(argv, expected):
    with pytest.raises(UserError) as info:
        parse_config(argv)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quantization_bit: 4\nfinetuning_type: full\n", "quantization_bit=4 with finetuning_type: full"),
        ("adapter_name_or_path: saves/a\nfinetuning_type: full\n", "adapter_name_or_path is set but finetuning_type is full"),
        ("fp16: true\nbf16: true\n", "fp16 and bf16 are both true"),
        ("mask_history: true\ntrain_on_prompt: true\n", "mask_history and train_on_prompt are both true"),
        ("val_size: 0.1\neval_dataset: a\n", "val_size and eval_dataset are both set"),
        ("interleave_probs: 0.5,0.5\ndataset: a,b\n", "interleave_probs is set but mix_strategy is concat"),
        ("quantization_bit: 4\nadapter_name_or_path: a\nexport_dir: out\n", "adapters cannot be merged into a quantized model"),
        ("quantization_bit: 3\n", "bitsandbytes quantizes to 4 or 8 bits"),
        ("use_dora: true\nfinetuning_type: freeze\n", "use_dora only apply to finetuning_type: lora"),
        ("do_train: true\n", "no dataset is given"),
    ],
)
def test_contradictions_are_refused_with_reason(tmp_path, text, expected):
    cfg = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        parse_config([cfg])
    assert str(info.value).startswith(f"{cfg}: ")
    assert expected in str(info.value)


def test_legacy_keys_are_renamed_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="tunelab.config"):
        config = parse_config(["--evaluation_strategy", "no", "--sft_packing", "--warmup_ratio", "0.1"])
    assert config.training_values["eval_strategy"] == "no"
    assert config.data.packing is True
    assert config.training_values["warmup_steps"] == pytest.approx(0.1)
    assert "'evaluation_strategy' is the old name of 'eval_strategy'" in caplog.text
    assert "'sft_packing' is the old name of 'packing'" in caplog.text


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(UserError, match="'evaluation_strategy' and 'eval_strategy' are both set"):
        parse_config(["--evaluation_strategy", "no", "--eval_strategy", "steps"])


def test_unsupported_anchor_feature_is_refused_but_false_is_accepted():
    with pytest.raises(UserError, match="key 'use_galore': GaLore optimizers are not supported"):
        parse_config(["--use_galore", "true"])
    parse_config(["--use_galore", "false"])


def test_derived_values_are_logged_once_with_reason(caplog):
    with caplog.at_level(logging.INFO, logger="tunelab.config"):
        config = parse_config(["--lora_rank", "4"])
    assert config.derived["lora_alpha"] == (8, "default: lora_rank * 2")
    assert caplog.text.count("lora_alpha = 8 (default: lora_rank * 2)") == 1
    assert config.data.template == "auto"


def test_report_to_none_stays_text_and_null_is_none(tmp_path):
    config = parse_config([write(tmp_path, "report_to: none\nadapter_name_or_path: null\n")])
    assert config.training_values["report_to"] == "none"
    assert config.model.adapter_name_or_path is None


def test_seed_sets_training_and_evaluation():
    config = parse_config(["--seed", "7"])
    assert config.training_values["seed"] == 7
    assert config.evaluation.seed == 7


def test_malformed_yaml_names_file_and_line(tmp_path):
    cfg = write(tmp_path, "stage: sft\nlora_rank: [8\n")
    with pytest.raises(UserError, match=rf"{cfg}:\d+: not valid YAML"):
        parse_config([cfg])


def test_config_file_must_be_a_mapping(tmp_path):
    with pytest.raises(UserError, match="must be a mapping"):
        parse_config([write(tmp_path, "- a\n- b\n")])


def test_missing_config_file():
    with pytest.raises(UserError, match="config file 'nope.yaml' does not exist"):
        parse_config(["nope.yaml"])


def test_stray_positional_argument():
    with pytest.raises(UserError, match="unexpected argument 'sft'"):
        parse_config(["--stage", "sft", "sft"])


def test_training_arguments_errors_become_user_errors():
    config = parse_config(["--load_best_model_at_end", "--eval_strategy", "steps", "--save_strategy", "epoch"])
    with pytest.raises(UserError, match="training arguments: "):
        _ = config.training


def test_rerunnable_values_reproduce_the_same_config(tmp_path):
    import yaml

    config = parse_config(["--lora_rank", "4", "--learning_rate", "3e-5", "--dataset", "a,b"])
    dumped = write(tmp_path, yaml.safe_dump(config.rerunnable_values()), "resolved.yaml")
    again = parse_config([dumped])
    assert again.finetuning == config.finetuning
    assert again.data == config.data
    assert again.training_values == config.training_values


@pytest.mark.parametrize(("args", "packing", "padding_free"), [
    (["--stage", "sft"], False, True),  # sft: padding-free batches of examples by default
    (["--stage", "pt"], True, False),  # pt: packed rows, as the anchor does
    (["--stage", "sft", "--packing", "true"], True, False),
    (["--stage", "pt", "--packing", "false"], False, True),
    (["--stage", "sft", "--padding_free", "false"], False, False),
    (["--stage", "dpo"], False, True),  # pairs: chosen and rejected sequences packed padding-free
    (["--stage", "rm"], False, True),
    (["--stage", "kto"], False, True),
    (["--stage", "dpo", "--padding_free", "false"], False, False),
    (["--stage", "ppo"], False, False),  # rollouts are padded
    (["--stage", "grpo"], False, False),
])
def test_padding_free_and_packing_defaults(args, packing, padding_free):
    config = parse_config(args)
    assert (config.data.packing, config.data.padding_free) == (packing, padding_free)
    if padding_free:
        assert config.derived["padding_free"][0] is True and "same examples per step" in config.derived["padding_free"][1]


@pytest.mark.parametrize(("args", "message"), [
    (["--stage", "sft", "--packing", "true", "--padding_free", "true"], "padding_free and packing are both true"),
    (["--stage", "ppo", "--padding_free", "true"],
     "padding_free applies to stages pt, sft, rm, dpo and kto; stage ppo pads"),
    (["--stage", "grpo", "--padding_free", "true"], "stage grpo pads its batches"),
])
def test_padding_free_contradictions_are_refused(args, message):
    with pytest.raises(UserError, match=message):
        parse_config(args)
