"""Ollama Modelfiles: pinned by a golden file per named template, and rendered (with a small Go-template
interpreter) to the same text as tunelab's own rendering of the template."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import pytest
from _gotemplate import render

from tunelab.data.conversation import Message, Role
from tunelab.data.templates import SpecialTokens, list_templates
from tunelab.data.templates.auto import AutoTemplate
from tunelab.data.templates.base import BOS
from tunelab.export.modelfile import modelfile_text

GOLDEN = Path(__file__).parent / "golden" / "modelfile"
TOKENS = SpecialTokens(bos="<s>", eos="</s>")
# names that render an official jinja have no record fields to write a Go template from (export says so)
RECORDS = [template for template in list_templates() if not isinstance(template, AutoTemplate)]
NAMES = [template.name for template in RECORDS]


@pytest.mark.parametrize("template", RECORDS, ids=NAMES)
def test_modelfile_matches_golden(template):
    text = modelfile_text(template, TOKENS)
    golden = GOLDEN / f"{template.name}.Modelfile"
    if os.environ.get("TUNELAB_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"regenerate with TUNELAB_UPDATE_GOLDEN=1 after checking {golden}"


def test_every_named_template_has_a_golden_file():
    assert sorted(p.stem for p in GOLDEN.glob("*.Modelfile")) == sorted(NAMES)


def _template_block(text: str) -> str:
    return re.search(r'^TEMPLATE """(.*?)"""$', text, re.DOTALL | re.MULTILINE).group(1)


CONVERSATIONS = [
    ("", [("user", "Hi there")]),
    ("Answer briefly.", [("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?")]),
    ("", [("user", "One"), ("assistant", "Two"), ("user", "Three"), ("assistant", "Four"), ("user", "Five")]),
]


@pytest.mark.parametrize("template", RECORDS, ids=NAMES)
def test_modelfile_template_renders_like_tunelab(template):
    """What Ollama sends to llama.cpp equals tunelab's rendering, minus the bos that llama.cpp adds."""
    go = _template_block(modelfile_text(template, TOKENS))
    for system, turns in CONVERSATIONS:
        messages = [Message(Role.USER if role == "user" else Role.ASSISTANT, content) for role, content in turns]
        segments = template.render(messages, system=system or None, tokens=TOKENS, add_generation_prompt=True)
        want = "".join(s.text for s in segments if not s.extra)
        first_bos = TOKENS.fill(BOS)
        if BOS in template.prefix or template.user.startswith(BOS):
            assert want.startswith(first_bos)
            want = want[len(first_bos):]
        data = {"System": system or template.default_system, "Tools": [],
                "Messages": [{"Role": role, "Content": content, "ToolCalls": []} for role, content in turns]}
        assert render(go, data) == want, (template.name, turns)


def test_qwen_modelfile_writes_tools_and_tool_calls():
    template = next(t for t in list_templates() if t.name == "qwen")
    go = _template_block(modelfile_text(template, TOKENS))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    data = {
        "System": "", "Tools": [tool],
        "Messages": [
            {"Role": "user", "Content": "Weather in Paris?", "ToolCalls": []},
            {"Role": "assistant", "Content": "", "ToolCalls": [{"Function": {"Name": "get_weather", "Arguments": '{"city":"Paris"}'}}]},
            {"Role": "tool", "Content": "18C", "ToolCalls": []},
        ],
    }
    text = render(go, data)
    assert text.startswith("<|im_start|>system\n# Tools\n\nYou may call one or more functions")
    assert '<tools>\n{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}\n</tools>' in text
    assert text.endswith(
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


def test_modelfile_parameters():
    qwen = next(t for t in list_templates() if t.name == "qwen")
    text = modelfile_text(qwen, SpecialTokens(bos="", eos="<|im_end|>"), "./model-f16.gguf")
    assert "FROM ./model-f16.gguf\n" in text
    assert 'SYSTEM """You are Qwen, created by Alibaba Cloud. You are a helpful assistant."""' in text
    assert text.count("PARAMETER stop") == 1 and 'PARAMETER stop "<|im_end|>"' in text
    llama3 = next(t for t in list_templates() if t.name == "llama3")
    text = modelfile_text(llama3, SpecialTokens(bos="<|begin_of_text|>", eos="<|eot_id|>"))
    assert 'PARAMETER stop "<|eot_id|>"\nPARAMETER stop "<|eom_id|>"\n' in text
    assert "<|begin_of_text|>" not in text  # llama.cpp adds the bos token itself


# the tokenizers of the families whose templates start with bos (deepseek-v3) and of those without one (qwen)
REAL_TOKENIZERS = ("qwen2.5", "qwen3", "deepseek-v3")


@cache
def load_tokenizer(name: str):
    """A real tokenizer of shared/fixtures/tokenizers (tests/templates' helper, which this folder cannot import)."""
    from transformers import AutoTokenizer

    from tunelab.testing import fixture_tokenizer_path

    return AutoTokenizer.from_pretrained(fixture_tokenizer_path(name))


def _ollama_ids(tokenizer, go: str, system: str, turns, template, bos_added: bool) -> list[int]:
    """What Ollama feeds the model: the rendered Go template, tokenized by llama.cpp with special tokens parsed,
    behind the bos llama.cpp adds when the GGUF says add_bos_token."""
    data = {"System": system or template.default_system, "Tools": [],
            "Messages": [{"Role": role, "Content": content, "ToolCalls": []} for role, content in turns]}
    ids = tokenizer.encode(render(go, data), add_special_tokens=False)
    return [tokenizer.bos_token_id, *ids] if bos_added else ids


@pytest.mark.parametrize("name", REAL_TOKENIZERS)
def test_ollama_prompts_are_the_training_ids(name):
    """Every named record template, through its Modelfile, gives exactly the ids tunelab trains on, with the bos
    llama.cpp adds (the GGUF's add_bos_token) or, for a Modelfile FROM the folder, the tokenizer's own."""
    from tunelab.data.encode import encode_prompt
    from tunelab.export.gguf_file import add_bos_token, tokenizer_adds_bos

    tokenizer = load_tokenizer(name)
    tokens = SpecialTokens.from_tokenizer(tokenizer)
    wrong = []
    for template in RECORDS:
        for bos_added in sorted({add_bos_token(tokenizer, template), tokenizer_adds_bos(tokenizer)}):
            go = _template_block(modelfile_text(template, tokens, bos_added=bos_added))
            for system, turns in CONVERSATIONS:
                messages = [Message(Role.USER if role == "user" else Role.ASSISTANT, content) for role, content in turns]
                want = encode_prompt(tokenizer, template, messages, system=system or None)
                if _ollama_ids(tokenizer, go, system, turns, template, bos_added) != want:
                    wrong.append((template.name, bos_added, len(turns)))
    assert not wrong, wrong


def test_deepseek_templates_get_bos_from_llama_cpp():
    """The deepseek-v3 tokenizer adds no bos itself; its templates start with one, so the GGUF says add_bos_token
    and the Modelfile leaves that bos out; FROM the folder (no GGUF) the Modelfile writes it."""
    from tunelab.export.gguf_file import add_bos_token, tokenizer_adds_bos

    tokenizer = load_tokenizer("deepseek-v3")
    bos = tokenizer.bos_token
    assert not tokenizer_adds_bos(tokenizer)
    by_name = {t.name: t for t in RECORDS}
    assert add_bos_token(tokenizer, by_name["llama2"])  # every user turn opens with bos, the first one too
    for name in ("deepseek3", "deepseekr1", "llama3"):
        assert add_bos_token(tokenizer, by_name[name]), name
        assert bos not in _template_block(modelfile_text(by_name[name], SpecialTokens.from_tokenizer(tokenizer)))
        folder_text = _template_block(modelfile_text(by_name[name], SpecialTokens.from_tokenizer(tokenizer), bos_added=False))
        assert bos in folder_text, name
    assert not add_bos_token(tokenizer, by_name["qwen"])  # chatml never starts with bos
    assert not add_bos_token(load_tokenizer("qwen2.5"), by_name["deepseek3"])  # no bos token at all
