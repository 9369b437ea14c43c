"""Every template name LLaMA-Factory 0.9.5 accepts works in tunelab, and renders what it should.

The fixture (tests/fixtures/anchor_templates/llamafactory-0.9.5.json, written by
scripts/templates/dump_anchor_templates.py in the anchor's own environment) holds the anchor's 121
names and what each renders on six probe conversations. Names with `source="anchor"` must render
exactly that; names that render a shipped official jinja must train each answer with its end token.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

import pytest

from tunelab.cli.main import main
from tunelab.data.conversation import Message, Role
from tunelab.data.templates import SpecialTokens, get_template
from tunelab.data.templates.anchor_formats import ANCHOR_TEMPLATES
from tunelab.data.templates.anchor_multimodal import ANCHOR_MULTIMODAL_TEMPLATES
from tunelab.data.templates.official_jinja import JINJA_SOURCES, JINJA_TEMPLATES, read_jinja
from tunelab.data.templates.registry import ALIASES, REGISTRY
from tunelab.errors import UserError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "anchor_templates" / "llamafactory-0.9.5.json"


@cache
def anchor() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


ANCHOR_NAMES = anchor()["names"]
ANCHOR_FORMATS = [name for name in ANCHOR_NAMES if REGISTRY.get(ALIASES.get(name, name)) and
                  REGISTRY[ALIASES.get(name, name)].source == "anchor"]


def _messages(turns: list[str]) -> list[Message]:
    return [Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, text) for i, text in enumerate(turns)]


class _Tokenizer:
    """What a named official jinja reads of a tokenizer: its bos / eos."""

    bos_token, eos_token = "<BOS>", "<EOS>"
    special_tokens_map = {"bos_token": "<BOS>", "eos_token": "<EOS>"}


def test_fixture_holds_the_anchors_121_names() -> None:
    assert anchor()["llamafactory"] == "0.9.5"
    assert len(ANCHOR_NAMES) == len(set(ANCHOR_NAMES)) == 121
    assert {"qwen3_5", "qwen3_6", "gemma4", "gpt_oss", "llama4", "mistral_small", "ministral3", "glm4_moe", "glm4_7",
            "granite4", "lfm2", "seed_oss", "hunyuan", "phi4_mini", "smollm2", "olmo"} <= set(ANCHOR_NAMES)


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_every_anchor_name_is_accepted_by_tunelab_check(name: str, capsys) -> None:
    assert main(["check", "--template", name, "--portable"]) == 0
    out = capsys.readouterr().out
    assert "unknown template" not in out
    assert f" * template: '{name}'" in out


def test_an_unknown_name_is_still_refused(capsys) -> None:
    assert main(["check", "--template", "qwen9_nothing", "--portable"]) == 2
    captured = capsys.readouterr()
    assert "unknown template 'qwen9_nothing'" in captured.out + captured.err


def test_every_registered_name_says_where_its_format_comes_from() -> None:
    for template in REGISTRY.values():
        assert template.source in {"official", "anchor", "tunelab"}, template.name
        if template.source == "official":
            assert template.official, template.name


@pytest.mark.parametrize("name", ANCHOR_FORMATS)
def test_anchor_format_renders_exactly_what_the_anchor_renders(name: str) -> None:
    record = anchor()["templates"][name]
    template = get_template(name)
    tokens = SpecialTokens(bos=anchor()["bos"], eos=record["eos"])
    for key, probe in anchor()["probes"].items():
        messages = _messages(probe["turns"])
        if key.startswith("prompt"):
            got = template.render_text(messages[:-1], system=probe["system"], tokens=tokens, add_generation_prompt=True)
            assert got == record[key], key
            continue
        segments = template.render(messages, system=probe["system"], tokens=tokens)
        assert "".join(s.text for s in segments) == "".join(p + r for p, r in record[key]), key
        trained = "".join(s.text for s in segments if s.response and s.trainable)
        for answer in probe["turns"][1::2]:  # every answer is trained, inside the anchor's response of its turn
            assert answer in trained, (key, answer)
            assert any(answer in response for _, response in record[key])


def test_anchor_formats_cover_every_name_without_an_official_source() -> None:
    official = {t.name for t in JINJA_TEMPLATES}
    families = {t.name for t in REGISTRY.values() if t.source != "anchor"}
    assert set(ANCHOR_NAMES) <= set(ANCHOR_FORMATS) | official | families | set(ALIASES)
    assert len(ANCHOR_TEMPLATES) + len(ANCHOR_MULTIMODAL_TEMPLATES) == 50 and len(official) == 33
    assert all(t.modalities for t in ANCHOR_MULTIMODAL_TEMPLATES) and not any(t.modalities for t in ANCHOR_TEMPLATES)


@pytest.mark.parametrize("name", [t.name for t in JINJA_TEMPLATES])
@pytest.mark.parametrize("thinking", [True, False])
def test_official_jinja_names_train_each_final_answer_with_its_end_token(name: str, thinking: bool) -> None:
    template = get_template(name, _Tokenizer())
    messages = _messages(["Hi there", "Hello! How can I help?", "What is 2+2?", "4"])
    segments = template.render(messages, system="You are terse.", enable_thinking=thinking)
    trained = [s.text for s in segments if s.response and s.trainable]
    end = "" if template.efficient_eos else template.end_of_turn.replace("{{eos_token}}", "<EOS>")
    assert trained and ("4" + end) in trained[-1], trained  # phi4_mini: and the eos its jinja writes at the end
    for piece in trained:  # a trained span never ends inside a control token (gpt-oss: `<|end|>` vs `<|return|>`)
        assert not piece.endswith(("<", "<|")), piece


def test_shipped_jinja_files_are_the_sources_they_name() -> None:
    for source in JINJA_SOURCES:
        text = read_jinja(source.name)
        assert len(text) > 200 and "message" in text, source.name
        assert source.copied_from.split(" ")[0].split("@")[0] in ("llama.cpp", "TRL", "openvino.genai", "huggingface.js",
                                                                   "xinference", "ollama"), source.name
    assert read_jinja("gpt_oss").count("<|channel|>") >= 3


def test_gemma2_is_gemma() -> None:
    assert get_template("gemma2") is REGISTRY["gemma"]


def test_multimodal_names_name_their_media_and_no_longer_warn(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tunelab.data.templates"):
        template = get_template("qwen2_vl", _Tokenizer())
    assert template.modalities == ("image", "video")
    assert "text part only" not in caplog.text  # media train with a multimodal model (docs/multimodal.md)


def test_a_tool_format_tunelab_does_not_write_is_refused_with_tools() -> None:
    template = get_template("bailing_v2")
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]
    plain = template.render_text(_messages(["hi", "hello"]))
    assert plain == "<role>HUMAN</role>hi<|role_end|><role>ASSISTANT</role>hello<|role_end|>"
    with pytest.raises(UserError, match="'ling' tool format .*`template: auto`"):
        template.render_text(_messages(["hi", "hello"]), tools=tools)


# official-jinja names whose family's real tokenizer is in ../shared/fixtures/tokenizers (Qwen2-VL uses Qwen2.5's
# vocabulary, Qwen3-VL / 3.5 / 3.6 Qwen3's control tokens)
JINJA_WITH_TOKENIZER = {"qwen2_vl": "qwen2.5", "mimo_vl": "qwen2.5", "qwen3_vl_nothink": "qwen3", "qwen3_5": "qwen3",
                        "qwen3_5_nothink": "qwen3", "qwen3_6": "qwen3"}


@pytest.mark.parametrize("name", sorted(JINJA_WITH_TOKENIZER))
@pytest.mark.parametrize("case", ["single", "single_system", "multi", "unicode"])
def test_official_jinja_names_encode_the_ids_of_apply_chat_template(name: str, case: str) -> None:
    """Segment-wise encoding of a shipped official jinja gives exactly `apply_chat_template`'s ids."""
    from template_helpers import CONVERSATIONS, GENERATION, load_tokenizer

    from tunelab.data.encode import encode_prompt, encode_supervised
    from tunelab.data.templates.jinja import to_hf_messages

    tokenizer = load_tokenizer(JINJA_WITH_TOKENIZER[name])
    template = get_template(name, tokenizer)
    system, messages = CONVERSATIONS[case]
    hf = to_hf_messages(messages, system)
    options = {} if name == "qwen3_5_nothink" else {"enable_thinking": True}
    expected = tokenizer.apply_chat_template(hf, chat_template=template.jinja, tokenize=True, return_dict=False, **options)
    assert encode_supervised(tokenizer, template, messages, system=system, cutoff_len=4096)["input_ids"] == list(expected)
    system, messages = GENERATION["gen_multi"]
    expected = tokenizer.apply_chat_template(to_hf_messages(messages, system), chat_template=template.jinja, tokenize=True,
                                             add_generation_prompt=True, return_dict=False, **options)
    assert encode_prompt(tokenizer, template, messages, system=system) == list(expected)


def test_official_jinja_names_have_their_markup_checked_against_the_tokenizer() -> None:
    """A named official jinja is held to the same rule as a record: its control tokens must be tokens."""
    from template_helpers import load_tokenizer

    from tunelab.data.templates.token_check import markup_problem, template_markup

    tokenizer = load_tokenizer("qwen2.5")
    assert markup_problem(get_template("qwen2_vl", tokenizer), tokenizer) is None
    assert template_markup(REGISTRY["gpt_oss"]) == ("<|return|>", "<|start|>", "<|message|>", "<|end|>", "<|channel|>")
    problem = markup_problem(get_template("gpt_oss", tokenizer), tokenizer, "Qwen2.5")
    assert problem and "template: gpt_oss writes <|return|>, <|start|>, <|message|>, <|end|>, <|channel|>" in problem


def test_docs_list_every_template_name() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "templates.md").read_text(encoding="utf-8")
    missing = [name for name in REGISTRY if f"| `{name}` |" not in docs]
    assert not missing, f"docs/templates.md's table lacks {missing}"
