"""Point 6 of issue 19: a named template's special markup must be tokens of the tokenizer, or the run is
refused (exit 2) naming the missing tokens and the choices; `new_special_tokens` + `resize_vocab: true`
then works, and the labels end on the end-of-turn token generation stops at."""

from __future__ import annotations

import pytest
from _seedkit import run

from tunelab.data.conversation import Message, Role
from tunelab.data.encode import encode_supervised, stop_token_ids
from tunelab.data.templates.registry import REGISTRY, get_template
from tunelab.data.templates.token_check import markup_problem, template_markup

LLAMA3_MARKUP = "<|start_header_id|>,<|end_header_id|>,<|eot_id|>"


def train_argv(model: object, out: object, *extra: object) -> list[object]:
    return ["--stage", "sft", "--do_train", "true", "--model_name_or_path", model, "--dataset", "identity",
            "--template", "llama3", "--output_dir", out, "--max_samples", "8", "--cutoff_len", "64", "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--report_to", "none", "--save_steps", "100", *extra]


def refusal(model: object) -> str:
    return (f"template: llama3 writes <|start_header_id|>, <|end_header_id|>, <|eot_id|>, which the tokenizer of "
            f"'{model}' does not have as tokens, so they would be trained as text pieces and generation would not "
            "stop at the end of a turn. Use template: auto (the tokenizer's own chat template), the template of "
            "this model's family (`tunelab template list`), or add them: new_special_tokens: "
            f"{LLAMA3_MARKUP} with resize_vocab: true.")


def test_check_refuses_llama3_markup_the_tokenizer_lacks(tiny_llama_plain, tmp_path, capsys):
    result = run(capsys, "check", *train_argv(tiny_llama_plain, tmp_path / "out"))
    assert result.code == 2
    assert result.error == refusal(tiny_llama_plain)


def test_train_refuses_it_before_loading_weights(tiny_llama_plain, tmp_path, capsys):
    result = run(capsys, "train", *train_argv(tiny_llama_plain, tmp_path / "out"))
    assert result.code == 2
    assert result.error == refusal(tiny_llama_plain)
    assert not (tmp_path / "out" / "trainer_log.jsonl").exists()


def test_the_models_own_tokens_pass(tiny_llama3, tmp_path, capsys):
    assert run(capsys, "check", *train_argv(tiny_llama3, tmp_path / "out")).code == 0


def test_new_special_tokens_with_resize_vocab_then_works(tiny_llama_plain, tmp_path, capsys):
    out = tmp_path / "out"
    argv = train_argv(tiny_llama_plain, out, "--new_special_tokens", LLAMA3_MARKUP, "--resize_vocab", "true")
    assert run(capsys, "check", *argv).code == 0
    trained = run(capsys, "train", *argv)
    assert trained.code == 0, trained.err
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert len(tokenizer.encode("<|eot_id|>", add_special_tokens=False)) == 1
    template = get_template("llama3")
    encoded = encode_supervised(tokenizer, template, (Message(Role.USER, "你好"), Message(Role.ASSISTANT, "你好！")))
    trained_ids = [i for i, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100]
    assert trained_ids[-1] == eot  # the answer's last trained token is the end of turn ...
    assert eot in stop_token_ids(tokenizer, template)  # ... which generation stops at


def test_each_family_names_its_control_tokens():
    assert template_markup(REGISTRY["llama3"]) == ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
    assert template_markup(REGISTRY["qwen"]) == ("<|im_start|>", "<|im_end|>")
    assert template_markup(REGISTRY["telechat"]) == ("<_user>", "<_bot>", "<_end>")
    assert template_markup(REGISTRY["baichuan2"]) == ("<reserved_106>", "<reserved_107>")
    assert template_markup(REGISTRY["yuan"]) == ("<sep>", "<eod>")
    assert template_markup(REGISTRY["deepseek3"]) == ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>")
    for plain in ("default", "alpaca", "vicuna", "llama2", "mistral", "empty", "zephyr"):
        assert template_markup(REGISTRY[plain]) == (), plain  # text markup (zephyr: text in Mistral's vocabulary)


@pytest.mark.parametrize(("fixture", "passing"), [
    # every ChatML layout (the anchor's names for Qwen-based and ChatML families included)
    ("qwen2.5", {"chatml", "qwen", "qwen3", "qwen3_nothink", "yi", "intern2", "chatml_de", "cpm4", "dbrx", "ernie",
                 "falcon_h1", "intern_s1", "intern_vl", "keye_vl", "lfm2", "llava_next_qwen", "llava_next_video_yi",
                 "llava_next_yi", "mimo", "mimo_v2", "mimo_vl", "minicpm_o", "minicpm_v", "minicpm_v_4_6", "opencoder",
                 "qwen2_audio", "qwen2_omni", "qwen2_vl", "qwen3_5", "qwen3_5_nothink", "qwen3_6", "qwen3_omni",
                 "qwen3_omni_nothink", "qwen3_vl", "qwen3_vl_nothink", "sailor", "smollm", "smollm2"}),
    ("deepseek-v3", {"deepseek3", "deepseekr1", "deepseekcoder"}),
])
def test_real_tokenizers_pass_their_own_families(fixture, passing):
    from transformers import AutoTokenizer

    from tunelab.testing import fixture_tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(fixture_tokenizer_path(fixture))
    with_markup = {name for name, template in REGISTRY.items() if template_markup(template)}
    assert {name for name in with_markup if markup_problem(REGISTRY[name], tokenizer) is None} == passing


def test_template_render_warns_about_it(tiny_llama_plain, capsys):
    result = run(capsys, "template", "render", "llama3", "--model_name_or_path", tiny_llama_plain, "--no_table")
    assert result.code == 0
    assert f"warning: {refusal(tiny_llama_plain)} (`tunelab train` refuses this" in result.err
