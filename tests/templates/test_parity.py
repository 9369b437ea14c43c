"""Official parity: tunelab's named templates render exactly what the families' official jinja renders.

Each case renders the same conversations with the named template and with the fixture's jinja
(through transformers' own renderer, with the fixture's special tokens). Where a real tokenizer is
in ../shared/fixtures/tokenizers, token ids from `apply_chat_template` are compared too.
"""

from __future__ import annotations

import pytest
from template_helpers import CONVERSATIONS, GENERATION, load_fixture, load_tokenizer

from tunelab.data.encode import encode_prompt, encode_supervised
from tunelab.data.templates import SpecialTokens, get_template
from tunelab.data.templates.jinja import render_jinja, to_hf_messages

# fixture file -> (named template, conversations it cannot express)
SHARED_FAMILIES = {
    "llama3": ("llama3", set()),
    "qwen2.5": ("qwen", set()),
    "qwen3": ("qwen3", set()),
    "chatglm3": ("chatglm3", set()),
    "deepseek-v3": ("deepseekr1", set()),
    "deepseek-llm": ("deepseek", set()),
    "mistral-v0.2": ("mistral", set()),
    "internlm2": ("intern2", set()),
    "telechat": ("telechat", set()),
    "baichuan2": ("baichuan2", set()),
}
# official templates looked up for named templates without a shared fixture (tests/fixtures/chat_templates)
_WITH_SYSTEM = {"single_system", "multi", "unicode", "gen_system", "gen_multi"}
_WITHOUT_SYSTEM = {"single", "multi_no_system", "gen_single"}
LOCAL_FAMILIES = {
    "qwen3-instruct-2507": ("qwen3_nothink", set()),
    "phi3.5": ("phi", set()),
    "phi-4": ("phi4", set()),
    "gemma": ("gemma", _WITH_SYSTEM),  # Gemma 2's template raises 'System role not supported'
    "gemma3": ("gemma3", set()),
    "glm4": ("glm4", set()),
    "yi": ("yi", set()),
    "chatml": ("chatml", set()),
    "zephyr": ("zephyr", set()),
    "llama2": ("llama2", set()),
    # the mirrored TeleChat2 template's default system prompt may have lost its full-width punctuation
    "telechat2": ("telechat2", _WITHOUT_SYSTEM),
    # LLaMA-Factory names whose Hub template llama.cpp's tests pin (the anchor's formats differ: see docs/templates.md)
    "openchat": ("openchat", set()),
    "deepseekcoder": ("deepseekcoder", set()),
    "phi_small": ("phi_small", set()),
    "bailing": ("bailing", set()),
    # copies of the Hub templates in openvino.genai / huggingface.js / xinference test data (each fixture names its source)
    "chatml_de": ("chatml_de", set()),
    "llama4": ("llama4", set()),
    "minicpm_v": ("minicpm_v", set()),
    "opencoder": ("opencoder", set()),
    "qwen2_omni": ("qwen2_omni", set()),
    "solar": ("solar", set()),
    "ernie_nothink": ("ernie_nothink", set()),
}
REAL_TOKENIZERS = {"qwen2.5": "qwen2.5", "qwen3": "qwen3", "deepseek-v3": "deepseek-v3", "qwen3-instruct-2507": "qwen3"}
ALL_FAMILIES = {**SHARED_FAMILIES, **LOCAL_FAMILIES}


def official_text(fixture: dict, system, messages, generation: bool, **kwargs) -> str:
    tokens = {k: fixture.get(k) for k in ("bos_token", "eos_token", "pad_token") if fixture.get(k) is not None}
    tokens.setdefault("bos_token", "")
    tokens.setdefault("eos_token", "")
    return render_jinja(
        fixture["chat_template"], to_hf_messages(messages, system), special_tokens=tokens, add_generation_prompt=generation, **kwargs
    )


def tunelab_text(template_name: str, fixture: dict, system, messages, generation: bool, **kwargs) -> str:
    template = get_template(template_name)
    tokens = SpecialTokens(bos=fixture.get("bos_token") or "", eos=fixture.get("eos_token") or "")
    return template.render_text(messages, system=system, tokens=tokens, add_generation_prompt=generation, **kwargs)


CASES = [
    (family, case, generation)
    for family in ALL_FAMILIES
    for case, generation in [*((c, False) for c in CONVERSATIONS), *((c, True) for c in GENERATION)]
]


@pytest.mark.parametrize("family,case,generation", CASES)
def test_official_text_parity(family: str, case: str, generation: bool) -> None:
    fixture = load_fixture(family)
    name, skipped = ALL_FAMILIES[family]
    if case in skipped:
        pytest.skip(f"{family}: the official template cannot express {case}")
    system, messages = (GENERATION if generation else CONVERSATIONS)[case]
    expected = official_text(fixture, system, messages, generation)
    assert tunelab_text(name, fixture, system, messages, generation) == expected


@pytest.mark.parametrize("family", sorted(REAL_TOKENIZERS))
@pytest.mark.parametrize("case", sorted(CONVERSATIONS))
def test_token_ids_equal_apply_chat_template(family: str, case: str) -> None:
    """Encoding a supervised example gives the ids of `apply_chat_template` with the official jinja."""
    fixture = load_fixture(family)
    tokenizer = load_tokenizer(REAL_TOKENIZERS[family])
    system, messages = CONVERSATIONS[case]
    hf = to_hf_messages(messages, system)
    expected = tokenizer.apply_chat_template(hf, chat_template=fixture["chat_template"], tokenize=True, return_dict=False)
    template = get_template(ALL_FAMILIES[family][0])
    encoded = encode_supervised(tokenizer, template, messages, system=system, cutoff_len=4096)
    assert encoded["input_ids"] == list(expected)


@pytest.mark.parametrize("family", sorted(REAL_TOKENIZERS))
@pytest.mark.parametrize("case", sorted(GENERATION))
def test_prompt_ids_equal_apply_chat_template(family: str, case: str) -> None:
    fixture = load_fixture(family)
    tokenizer = load_tokenizer(REAL_TOKENIZERS[family])
    system, messages = GENERATION[case]
    hf = to_hf_messages(messages, system)
    expected = tokenizer.apply_chat_template(
        hf, chat_template=fixture["chat_template"], tokenize=True, add_generation_prompt=True, return_dict=False
    )
    template = get_template(ALL_FAMILIES[family][0])
    assert encode_prompt(tokenizer, template, messages, system=system) == list(expected)


@pytest.mark.parametrize("case", sorted(GENERATION))
def test_qwen3_generation_prompt_without_thinking(case: str) -> None:
    fixture = load_fixture("qwen3")
    system, messages = GENERATION[case]
    expected = official_text(fixture, system, messages, True, enable_thinking=False)
    assert expected.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tunelab_text("qwen3", fixture, system, messages, True, enable_thinking=False) == expected


def test_deepseek3_is_r1_without_the_opened_think_block() -> None:
    fixture = load_fixture("deepseek-v3")
    system, messages = GENERATION["gen_multi"]
    official = official_text(fixture, system, messages, True)
    assert official.endswith("<｜Assistant｜><think>\n")
    assert tunelab_text("deepseek3", fixture, system, messages, True) == official[: -len("<think>\n")]


def test_every_named_template_with_an_official_fixture_is_checked() -> None:
    """The parity table covers each record that names an official counterpart (see docs/templates.md).

    Names that render a shipped official jinja are that jinja; the anchor's formats are checked
    against the anchor's own renderings (test_anchor_names.py).
    """
    checked = {name for name, _ in ALL_FAMILIES.values()} | {"deepseek3"}
    without_fixture = {"default", "empty", "fewshot", "alpaca", "vicuna", "yuan", "auto"}
    from tunelab.data.templates.families import TEMPLATES
    from tunelab.data.templates.families_llamafactory import LLAMAFACTORY_FAMILIES

    assert {t.name for t in (*TEMPLATES, *LLAMAFACTORY_FAMILIES)} - without_fixture <= checked


def test_gemma_multi_turn_without_system_matches_gemma2() -> None:
    fixture = load_fixture("gemma")
    system, messages = CONVERSATIONS["multi_no_system"]
    expected = official_text(fixture, system, messages + GENERATION["gen_single"][1], True)
    assert expected.startswith("<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n")
    assert tunelab_text("gemma", fixture, system, messages + GENERATION["gen_single"][1], True) == expected


def test_telechat2_default_system_prompt_is_written_without_a_system_message() -> None:
    fixture = load_fixture("telechat2")
    system, messages = CONVERSATIONS["single"]
    text = tunelab_text("telechat2", fixture, system, messages, False)
    assert text == "<_system>你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院（TeleAI）研发的人工智能助手。\n<_user>Hello<_bot>Hi there<_end>\n"
    official = official_text(fixture, system, messages, False)
    assert official.endswith("\n<_user>Hello<_bot>Hi there<_end>\n") and official.startswith("<_system>你是中国电信星辰语义大模型")


def test_fewshot_renders_plain_text_with_a_blank_line_after_each_answer() -> None:
    """The anchor's eval template: no markup, so a base model reads continuous few-shot text."""
    from tunelab.data.conversation import Message, Role
    from tunelab.data.templates import get_template

    template = get_template("fewshot")
    messages = [Message(Role.USER, "Q1 Answer:"), Message(Role.ASSISTANT, "A"), Message(Role.USER, "Q2 Answer:")]
    assert "".join(s.text for s in template.render(messages)) == "Q1 Answer:A\n\nQ2 Answer:"
