"""Point 3 of issue 19: values older anchor versions accepted are accepted and mapped, each mapping logged
(`export_device: cuda`), and an empty YAML value means "not set" for every key (the anchor's reading)."""

from __future__ import annotations

import logging

import pytest
from _seedkit import SEED_000_MERGE, run

from tunelab.config.groups import all_fields
from tunelab.config.parser import parse_config


def test_seed_000_merge_file_parses_with_the_anchors_meaning(tmp_path, caplog):
    merge = tmp_path / "merge_llama3_lora_sft.yaml"
    merge.write_text(SEED_000_MERGE.format(model="/root/autodl-tmp/models/Llama3-8B-Chinese-Chat/",
                                           adapter="/root/code/LLaMA-Factory/saves/LLaMA3-8B-Chinese-Chat/lora/x",
                                           export_dir="/root/autodl-tmp/models/LLaMA3-8B-Chinese-Chat-merged"))
    with caplog.at_level(logging.INFO, logger="tunelab"):
        config = parse_config([str(merge)])
    assert config.export.export_device == "auto"  # the GPU when there is one, as `cuda` meant
    assert config.export.export_legacy_format is False  # empty: the default, safetensors
    assert config.export.export_size == 4
    assert "export_legacy_format" not in config.explicit
    assert f"{merge}: export_device: 'cuda' is an older spelling; using export_device: 'auto'." in caplog.text
    assert f"{merge}: 'export_legacy_format' has no value; it is treated as not set (its default applies)." in caplog.text


def test_an_empty_value_means_not_set_for_every_key(tmp_path):
    keys = sorted(all_fields())
    cfg = tmp_path / "all_empty.yaml"
    cfg.write_text("".join(f"{key}:\n" for key in keys))
    config = parse_config([str(cfg)])
    assert config.explicit == {} and config.training_values == {}
    for key in keys:
        declaration = all_fields()[key][0]
        if declaration.group != "training":
            value = getattr(config.group(declaration.group), key)
            assert value == declaration.default or key in config.derived, key


@pytest.mark.parametrize(("written", "value"), [("true", "fa2"), ("false", "disabled"), ("off", "disabled"),
                                                ("auto", "auto"), ("sdpa", "sdpa")])
def test_flash_attn_of_older_anchor_versions(tmp_path, written, value):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"flash_attn: {written}\n")
    assert parse_config([str(cfg)]).model.flash_attn == value
    assert parse_config([f"--flash_attn={written}"]).model.flash_attn == value


def test_old_key_and_old_value_together():
    """`--flash_attn_2 true` (a key two renamings old) reaches today's key and value."""
    assert parse_config(["--flash_attn_2", "true"]).model.flash_attn == "fa2"


def test_export_device_cuda_on_the_command_line(capsys):
    result = run(capsys, "check", "--export_device", "cuda", "--portable")
    assert result.code == 0
    assert "command line: export_device: 'cuda' is an older spelling; using export_device: 'auto'." in result.err


def test_a_value_still_wrong_is_still_refused(capsys):
    result = run(capsys, "check", "--export_device", "tpu", "--portable")
    assert result.code == 2
    assert result.error == ("command line: key 'export_device' has value 'tpu', expected one of 'cpu', 'auto'. "
                            "Did you mean 'cpu'?")
