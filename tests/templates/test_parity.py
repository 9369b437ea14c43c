"""Official parity: tunelab's named templates render exactly what the families' official jinja renders.

Each case renders the same conversations with the named template and with the fixture's jinja
(through transformers' own renderer, with the fixture's special tokens). Where a real tokenizer is
in ../shared/fixtures/tokenizers, token ids from `apply_chat_template` are compared too.
"""

from __future__ import annotations

import pytest

from conftest import CONVERSATIONS, GENERATION, load_fixture, load_tokenizer
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
LOCAL_FAMILIES = {
    "qwen3-instruct-2507": ("qwen3_nothink", set()),
    "phi3.5": ("phi", set()),
    "phi-4": ("phi4", set()),
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
