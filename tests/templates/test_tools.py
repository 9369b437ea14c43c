"""Tool definitions, calls and results: official parity for Qwen, and each tool format's shape."""

from __future__ import annotations

import json

import pytest
from test_golden_labels import TOOL_CONVERSATION, TOOLS

from conftest import OBS, A, F, U, conv, load_fixture, load_tokenizer
from tunelab.data.encode import encode_prompt, encode_supervised
from tunelab.data.templates import SpecialTokens, get_template
from tunelab.data.templates.jinja import to_hf_messages
from tunelab.data.templates.tools import get_tool_format, normalize_tools, parse_calls
from tunelab.errors import UserError


@pytest.mark.parametrize("family,name,system", [("qwen2.5", "qwen", None), ("qwen2.5", "qwen", "Be brief."), ("qwen3", "qwen3", None), ("qwen3", "qwen3", "Be brief.")])
def test_qwen_tool_conversation_matches_the_official_template(family: str, name: str, system) -> None:
    tokenizer = load_tokenizer(family)
    fixture = load_fixture(family)
    hf = to_hf_messages(TOOL_CONVERSATION, system)
    tools = normalize_tools(TOOLS)
    expected = tokenizer.apply_chat_template(hf, tools=tools, chat_template=fixture["chat_template"], tokenize=True, return_dict=False)
    encoded = encode_supervised(tokenizer, get_template(name), TOOL_CONVERSATION, system=system, tools=TOOLS)
    assert encoded["input_ids"] == list(expected)
    prompt = TOOL_CONVERSATION[:3]
    expected_prompt = tokenizer.apply_chat_template(
        to_hf_messages(prompt, system), tools=tools, chat_template=fixture["chat_template"], tokenize=True,
        add_generation_prompt=True, return_dict=False,
    )
    assert encode_prompt(tokenizer, get_template(name), prompt, system=system, tools=TOOLS) == list(expected_prompt)


def test_parallel_calls_match_the_official_template(qwen25_tokenizer) -> None:
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_weather", "arguments": {"city": "Rome"}}]
    messages = conv((U, "Paris and Rome?"), (F, json.dumps(calls)))
    fixture = load_fixture("qwen2.5")
    expected = qwen25_tokenizer.apply_chat_template(
        to_hf_messages(messages), tools=normalize_tools(TOOLS), chat_template=fixture["chat_template"], tokenize=False
    )
    assert get_template("qwen").render_text(messages, tools=normalize_tools(TOOLS)) == expected


def render(name: str, tool_format: str | None = None) -> str:
    template = get_template(name, tool_format=tool_format)
    return template.render_text(TOOL_CONVERSATION, tools=normalize_tools(TOOLS), tokens=SpecialTokens("<s>", "</s>"))


def test_llama3_tool_format() -> None:
    text = render("llama3")
    assert "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023" in text
    assert "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions" in text
    assert '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in text
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n{"temp": 20}<|eot_id|>' in text


def test_glm4_tool_format() -> None:
    text = render("glm4")
    assert text.startswith("[gMASK]<sop><|system|>\n你是一个名为 ChatGLM 的人工智能助手。")
    assert "# 可用工具\n\n## get_weather\n\n{\n    \"name\": \"get_weather\"" in text
    assert '<|assistant|>get_weather\n{"city": "Paris"}<|observation|>\n{"temp": 20}<|assistant|>\nIt is 20 degrees.' in text


def test_mistral_tool_format() -> None:
    text = render("mistral")
    assert text.startswith('<s>[AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "get_weather"')
    assert '[/AVAILABLE_TOOLS] [INST] Weather in Paris? [/INST] [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]</s>' in text
    assert '[TOOL_RESULTS] {"content": {"temp": 20}}[/TOOL_RESULTS] It is 20 degrees.</s>' in text


def test_tool_format_key_overrides_the_template_format() -> None:
    text = render("chatml", tool_format="qwen")
    assert "<tool_call>\n{\"name\": \"get_weather\"" in text
    assert "Action: get_weather" in render("chatml")


@pytest.mark.parametrize("name", ["qwen", "llama3", "glm4", "mistral", "default"])
def test_calls_written_by_a_format_are_parsed_back(name: str) -> None:
    fmt = get_tool_format(name)
    calls = parse_calls(json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}}))
    assert fmt.extract(fmt.format_calls(calls)) == calls
    assert fmt.extract("It is sunny.") is None


def test_bad_tool_data_is_a_user_error() -> None:
    with pytest.raises(UserError, match="tools: not valid JSON"):
        normalize_tools("[{")
    with pytest.raises(UserError, match="function_call"):
        parse_calls('{"arguments": {}}')
    with pytest.raises(UserError, match="tool_format: unknown format 'qwen9'"):
        get_template("qwen", tool_format="qwen9")


def test_observation_without_tools_still_renders() -> None:
    messages = conv((U, "hi"), (F, '{"name": "f", "arguments": {}}'), (OBS, "ok"), (A, "done"))
    text = get_template("qwen").render_text(messages)
    assert '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>' in text
