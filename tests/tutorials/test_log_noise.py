"""Point 9 of issue 19: values print as values, each message once, no misleading hub links for local
folders, no empty folder left behind, and third-party lines that tell the user nothing are filtered
(in one place: tunelab.utils.logging)."""

from __future__ import annotations

import json

from _seedkit import run

from tunelab.utils.logging import setup_logging


def test_a_renamed_flag_prints_its_value(capsys):
    result = run(capsys, "check", "--sft_packing", "--stage", "sft", "--portable")
    assert result.code == 0
    assert "command line: 'sft_packing' is the old name of 'packing'; using packing=True." in result.err
    assert "<object object" not in result.err


def test_the_bundled_data_folder_is_announced_once(tiny_qwen, tmp_path, capsys):
    argv = ["--stage", "sft", "--do_train", "true", "--model_name_or_path", tiny_qwen, "--dataset", "identity",
            "--template", "qwen", "--output_dir", tmp_path / "out", "--max_samples", "4", "--cutoff_len", "48",
            "--max_steps", "1", "--report_to", "none"]
    for command in ("check", "train"):
        result = run(capsys, command, *argv)
        assert result.code == 0, result.err
        assert result.err.count("dataset_dir: ./data does not exist; using tunelab's bundled data") == 1, command


def test_transformers_empty_model_type_line_is_filtered(tmp_path, capfd):
    """Reading the config of a model with its own code prints "... to instantiate a model of type ``"."""
    from transformers import PretrainedConfig

    setup_logging()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "telechat"}))
    capfd.readouterr()
    PretrainedConfig.from_pretrained(tmp_path)
    assert "to instantiate a model of type" not in capfd.readouterr().err


def test_a_local_model_folder_never_gets_a_hub_link(tmp_path, capsys):
    folder = tmp_path / "telechat_7B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "telechat", "auto_map": {
        "AutoConfig": "configuration_telechat.TelechatConfig"}}))
    for trust in ("false", "true"):
        result = run(capsys, "check", "--model_name_or_path", folder, "--trust_remote_code", trust)
        assert result.code == 2
        assert "hf.co" not in result.err and "huggingface.co" not in result.err


def test_no_empty_staging_folder_after_a_finished_run(tiny_qwen, tmp_path, capsys):
    out = tmp_path / "out"
    result = run(capsys, "train", "--stage", "sft", "--do_train", "true", "--model_name_or_path", tiny_qwen,
                 "--dataset", "identity", "--template", "qwen", "--output_dir", out, "--max_samples", "4",
                 "--cutoff_len", "48", "--max_steps", "2", "--save_steps", "1", "--report_to", "none")
    assert result.code == 0, result.err
    assert (out / "checkpoint-2").is_dir()
    assert not (out / ".tunelab-staging").exists()
