"""The drift guard: a named template that writes conversations differently from the tokenizer's own chat
template is found (probe, offset, both texts and ids) and reported in one warning with the two ways out;
an agreeing one, `template: auto`, a tokenizer without a jinja and `check_template: false` stay silent."""

from __future__ import annotations

import logging

import pytest
from template_helpers import TOKENIZERS

from tunelab.config.data_args import DataArguments
from tunelab.data.templates import get_template
from tunelab.data.templates.drift import PROBES, compare, drift_message, find_drift, warn_on_drift
from tunelab.model.builtin import CHATML_TEMPLATE

#: ChatML exactly, but no default system prompt (the `chatml` record; Qwen2.5's jinja adds "You are Qwen ...")
PLAIN_CHATML = CHATML_TEMPLATE
#: the same layout, refusing system turns the way Gemma's official jinja does
NO_SYSTEM_CHATML = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    + CHATML_TEMPLATE
)
QWEN_SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud."


@pytest.fixture(autouse=True)
def _propagate_tunelab_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI test run earlier sets propagate off on "tunelab" (its own stderr handler); caplog needs it on."""
    monkeypatch.setattr(logging.getLogger("tunelab"), "propagate", True)


def qwen_with_jinja(jinja: str):
    """The real Qwen2.5 tokenizer, loaded afresh (the session one stays untouched), with another chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZERS / "qwen2.5"))
    tokenizer.chat_template = jinja
    return tokenizer


@pytest.fixture(scope="module")
def plain_chatml_tokenizer():
    return qwen_with_jinja(PLAIN_CHATML)


def drift_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "tunelab.data.templates"]


def test_a_differing_jinja_is_found_at_the_first_differing_character(plain_chatml_tokenizer) -> None:
    tokenizer = plain_chatml_tokenizer
    drift = find_drift(get_template("qwen", tokenizer), tokenizer, model="my-model")
    assert drift is not None
    # with a system prompt both write the same; without one `qwen` writes Qwen's default system turn
    assert drift.probe == "without a system prompt" and drift.compared == tuple(p.name for p in PROBES)
    assert drift.offset == len("<|im_start|>")
    assert drift.named_window.startswith(QWEN_SYSTEM[:28]) and drift.own_window.startswith("<|im_start|>user\nHello!")
    assert drift.template == "qwen" and drift.model == "my-model"
    own = tokenizer.apply_chat_template(
        [{"role": m.role.value, "content": m.content} for m in PROBES[1].messages], tokenize=False, add_generation_prompt=True
    )
    assert drift.own_ids == tuple(tokenizer(own, add_special_tokens=False)["input_ids"])
    assert drift.named_ids[:4] == tuple(tokenizer(QWEN_SYSTEM, add_special_tokens=False)["input_ids"][:4])
    assert drift.named_ids != drift.own_ids


def test_the_warning_shows_both_snippets_and_the_two_ways_out(plain_chatml_tokenizer, caplog) -> None:
    tokenizer = plain_chatml_tokenizer
    with caplog.at_level(logging.INFO, logger="tunelab"):
        drift = warn_on_drift(get_template("qwen", tokenizer), tokenizer, DataArguments(), where="training",
                              model="Qwen/Qwen2.5-7B-Instruct")
    [message] = drift_warnings(caplog)
    assert drift is not None
    assert repr(drift.named_window) in message and repr(drift.own_window) in message
    assert "'qwen'" in message and "Qwen/Qwen2.5-7B-Instruct" in message
    assert "`template: auto`" in message and "`check_template: false`" in message
    assert "at character 12" in message and "without a system prompt" in message
    assert "\n" not in message  # one log line: the newlines of the snippets are repr'd
    # the reference rendering is not announced as the template in use
    assert "(template: auto)" not in caplog.text


def test_the_inference_warning_says_the_model_answers_in_a_layout_it_was_not_trained_on(plain_chatml_tokenizer) -> None:
    drift = find_drift(get_template("qwen", plain_chatml_tokenizer), plain_chatml_tokenizer, model="m")
    assert drift is not None
    message = drift_message(drift, "inference")
    assert "answer in a layout it was not trained on" in message and "`template: auto`" in message
    assert "`check_template: false`" in drift_message(drift, "export")
    with pytest.raises(ValueError):
        drift_message(drift, "elsewhere")


def test_an_agreeing_jinja_gives_no_warning(qwen25_tokenizer, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tunelab"):
        assert warn_on_drift(get_template("qwen", qwen25_tokenizer), qwen25_tokenizer, DataArguments(), where="training") is None
    assert drift_warnings(caplog) == []
    assert all(result.offset is None and result.compared for result in compare(get_template("qwen", qwen25_tokenizer), qwen25_tokenizer))


def test_check_template_false_is_silent(plain_chatml_tokenizer, caplog) -> None:
    tokenizer = plain_chatml_tokenizer
    with caplog.at_level(logging.INFO, logger="tunelab"):
        assert warn_on_drift(get_template("qwen", tokenizer), tokenizer, DataArguments(check_template=False),
                             where="inference") is None
    assert drift_warnings(caplog) == []


def test_nothing_to_compare_for_auto_or_a_tokenizer_without_jinja(qwen25_tokenizer, deepseek_tokenizer) -> None:
    assert find_drift(get_template("auto", qwen25_tokenizer), qwen25_tokenizer) is None
    assert deepseek_tokenizer.chat_template is None
    assert find_drift(get_template("chatml", deepseek_tokenizer), deepseek_tokenizer) is None


def test_a_default_system_override_reaches_both_sides(qwen25_tokenizer) -> None:
    # `default_system` would be written by `template: auto` too: not a difference of layout
    template = get_template("chatml", qwen25_tokenizer, default_system="Be brief.")
    assert find_drift(template, qwen25_tokenizer) is not None  # alone, the model's jinja writes "You are Qwen ..."
    assert warn_on_drift(template, qwen25_tokenizer, DataArguments(default_system="Be brief."), where="training") is None


def test_a_jinja_refusing_system_turns_is_compared_without_a_system_prompt_only() -> None:
    tokenizer = qwen_with_jinja(NO_SYSTEM_CHATML)
    with_system, without = compare(get_template("chatml", tokenizer), tokenizer)
    assert not with_system.compared and "System role not supported" in with_system.refused
    assert without.compared and without.offset is None
    assert find_drift(get_template("chatml", tokenizer), tokenizer) is None  # agrees where it can be compared
    drift = find_drift(get_template("qwen", tokenizer), tokenizer, model="m")
    assert drift is not None and drift.compared == ("without a system prompt",)
    assert "(compared without a system prompt only)" in drift_message(drift, "training")


def test_training_logs_the_drift_warning_end_to_end(tiny_qwen, tmp_path, capsys) -> None:
    """`tunelab train` with `chatml` on a model whose tokenizer (Qwen2.5's) writes a default system prompt."""
    from tunelab.cli.main import main

    argv = ["train", f"--model_name_or_path={tiny_qwen}", "--stage=sft", "--do_train=true", "--dataset=identity",
            "--template=chatml", "--max_samples=4", "--max_steps=1", "--report_to=none", "--cutoff_len=64",
            "--finetuning_type=lora", "--per_device_train_batch_size=2", f"--output_dir={tmp_path / 'out'}"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "does not write conversations the way" in line]
    assert "template: 'chatml'" in line and str(tiny_qwen) in line and "The model would be trained on" in line
    assert "`template: auto`" in line and "`check_template: false`" in line


def test_inference_and_export_check_the_template_they_resolve(tiny_qwen, caplog) -> None:
    from tunelab.config.parser import parse_config
    from tunelab.export.run import resolve_template
    from tunelab.infer.loader import load_chat_model

    with caplog.at_level(logging.INFO, logger="tunelab"):
        load_chat_model(parse_config([f"model_name_or_path={tiny_qwen}", "template=chatml"]))
    [message] = drift_warnings(caplog)
    assert "answer in a layout it was not trained on" in message
    caplog.clear()
    config = parse_config([f"model_name_or_path={tiny_qwen}", "template=chatml", "export_dir=unused"])
    with caplog.at_level(logging.INFO, logger="tunelab"):
        resolve_template(config, qwen_with_jinja(PLAIN_CHATML))
        assert resolve_template(config, qwen_with_jinja(NO_SYSTEM_CHATML)).name == "chatml"
    assert drift_warnings(caplog) == []  # chatml is the jinja of these tokenizers
    config = parse_config([f"model_name_or_path={tiny_qwen}", "template=qwen", "export_dir=unused"])
    with caplog.at_level(logging.INFO, logger="tunelab"):
        resolve_template(config, qwen_with_jinja(PLAIN_CHATML))
    [message] = drift_warnings(caplog)
    assert "The export is checked" in message
