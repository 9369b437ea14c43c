"""`tunelab template check` (exit 0 identical, 1 different, 2 user error) and the source column of `template list`."""

from __future__ import annotations

import json
import shutil

from template_helpers import TOKENIZERS

from tunelab.cli.main import main
from tunelab.data.templates import list_templates
from tunelab.model.builtin import CHATML_TEMPLATE

QWEN = str(TOKENIZERS / "qwen2.5")
DEEPSEEK = str(TOKENIZERS / "deepseek-v3")


def test_identical_exits_0_and_prints_both_renderings(capsys) -> None:
    assert main(["template", "check", "--model_name_or_path", QWEN, "--template", "qwen"]) == 0
    out = capsys.readouterr().out
    assert out.count("identical\n") == 2  # both probes
    assert "=== probe with a system prompt" in out and "=== probe without a system prompt" in out
    assert out.count("You are Qwen, created by Alibaba Cloud.") == 2  # the no-system probe, on both sides
    assert "ids: [151644, 8948, 198" in out and "result: identical" in out


def test_a_difference_exits_1_and_names_it(capsys) -> None:
    assert main(["template", "check", "--model_name_or_path", QWEN, "--template", "chatml"]) == 1
    out = capsys.readouterr().out
    assert "identical\n" in out  # with a system prompt they agree
    assert "first difference at character 12" in out
    assert "result: different" in out and "'<|im_start|>system\\nYou are Qwen, cre'" in out


def test_a_saved_tokenizer_with_another_chat_template_is_compared(tmp_path, capsys) -> None:
    folder = tmp_path / "tok"
    shutil.copytree(QWEN, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = CHATML_TEMPLATE  # no default system prompt: now `chatml` is its layout, `qwen` is not
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert main(["template", "check", "--model_name_or_path", str(folder), "--template", "chatml"]) == 0
    assert main(["template", "check", "--model_name_or_path", str(folder), "--template", "qwen"]) == 1
    assert "result: different" in capsys.readouterr().out


def test_user_errors_exit_2(capsys) -> None:
    assert main(["template", "check", "--model_name_or_path", QWEN, "--template", "nope"]) == 2
    assert "unknown template 'nope'" in capsys.readouterr().err
    assert main(["template", "check", "--model_name_or_path", DEEPSEEK, "--template", "deepseek3"]) == 2
    assert "nothing to compare 'deepseek3' against" in capsys.readouterr().err
    assert main(["template", "check", "--model_name_or_path", DEEPSEEK]) == 2
    assert "nothing to compare against" in capsys.readouterr().err


def test_without_a_template_the_models_own_is_used(capsys) -> None:
    assert main(["template", "check", "--model_name_or_path", QWEN]) == 0
    assert "`template: auto` uses the model's own chat template" in capsys.readouterr().out


def test_list_shows_what_each_template_is_checked_against(capsys) -> None:
    assert main(["template", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "official: Qwen/Qwen2.5-7B-Instruct" in lines["qwen"]
    assert "anchor (LLaMA-Factory format)" in lines["alpaca"]
    assert "tunelab (own format)" in lines["default"]
    multimodal = next(t for t in list_templates() if t.modalities)
    assert f"multimodal ({', '.join(multimodal.modalities)}): media train with a model of a family docs/multimodal.md lists" in lines[multimodal.name]
    assert "LLaMA-Factory's format, no official chat template" in lines["official:"]  # the legend
