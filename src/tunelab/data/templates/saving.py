"""Saved tokenizers keep their chat template (DESIGN decision 7).

`chat_template_for_saving` returns the tokenizer's own jinja untouched when it has one. Otherwise a
named template that renders an official jinja (or names one in `saved_jinja`, as the reasoning
records qwen3 and deepseekr1 do) saves that jinja, so `enable_thinking` behaves in every tool as it
did in training; any other named template gets a jinja written from its fields whose rendering
equals tunelab's rendering of plain conversations (system / user / assistant / tool-result turns,
and the think blocks of LLaMA-Factory's reasoning formats; tested for every named template), so a
model trained by tunelab chats correctly in any tool that reads `tokenizer_config.json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tunelab.data.templates.base import CONTENT, Template
from tunelab.data.templates.tools import get_tool_format


def _literal(text: str) -> str:
    """`text` as a jinja expression, with `{{bos_token}}` / `{{eos_token}}` as variables."""
    parts = [p for p in re.split(r"(\{\{bos_token\}\}|\{\{eos_token\}\})", text) if p]
    if not parts:
        return "''"
    return " + ".join(p[2:-2] if p in ("{{bos_token}}", "{{eos_token}}") else json.dumps(p, ensure_ascii=False) for p in parts)


def _wrap(fmt: str, inner: str) -> str:
    before, _, after = fmt.partition(CONTENT)
    return " + ".join(x for x in (_literal(before) if before else "", inner, _literal(after) if after else "") if x)


def _answer(template: Template) -> str:
    """The jinja expression of an answer's text: `content`, behind its think block for `every_turn` formats."""
    thinking = template.thinking
    if thinking is None or not thinking.every_turn:
        return "content"
    block_before, _, block_after = thinking.block.partition("{reasoning}")
    return (
        f"((({_literal(block_before)} + ns.reasoning + {_literal(block_after)}) if ns.reasoning and enable_thinking is "
        f"not false else {_literal(thinking.empty)}) + content)"
    )


def _split_reasoning(template: Template) -> str:
    """Jinja that moves an answer's `<think>...</think>` into `ns.reasoning` (as `render.split_reasoning` does)."""
    thinking = template.thinking
    if thinking is None or not thinking.every_turn:
        return ""
    opening, closing = json.dumps(thinking.open, ensure_ascii=False), json.dumps(thinking.close, ensure_ascii=False)
    strip = " | trim" if template.strip_content else ""
    lstrip = ".lstrip('\\n')" if thinking.lstrip_answer else ""
    return (
        "{%- set ns.reasoning = '' -%}"
        f"{{%- if {closing} in content -%}}"
        f"{{%- set ns.reasoning = (content.split({closing})[:-1] | join({closing})).rstrip('\n').split({opening})[-1].lstrip('\n') -%}}"
        f"{{%- set content = (content.split({closing})[-1]{lstrip}){strip} -%}}"
        "{%- endif -%}"
    )


def jinja_for(template: Template) -> str:
    """A jinja chat template that renders plain conversations exactly like `template`."""
    trim = " | trim" if template.strip_content else ""
    system_trim = " | trim" if template.strip_system else ""
    system = _literal(template.default_system) if template.default_system else "''"
    observation = template.observation or template.user
    lines = [
        "{%- set ns = namespace(system=" + system + ", reasoning='') -%}",
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{%- set ns.system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}",
        "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}",
        "{{- " + _literal(template.prefix) + " -}}" if template.prefix else "",
    ]
    if not template.system_in_user:
        lines.append("{%- if ns.system -%}{{- " + _wrap(template.system, f"(ns.system{system_trim})") + " -}}{%- endif -%}")
    lines += [
        "{%- for message in loop_messages -%}",
        "{%- set content = message['content']" + trim + " -%}",
        "{%- if message['role'] == 'user' -%}",
    ]
    if template.system_in_user:
        lines.append(
            "{%- if loop.first and ns.system -%}{%- set content = "
            + _wrap(template.system, f"(ns.system{system_trim})")
            + " + content -%}{%- endif -%}"
        )
    lines += [
        "{{- " + _wrap(template.user, "content") + " -}}",
        "{%- elif message['role'] == 'tool' -%}",
        "{{- " + _wrap(observation, "(message['content'] | tojson)" if get_tool_format(template.tool_format).result_as_json else "content") + " -}}",
        "{%- elif message['role'] == 'assistant' -%}",
        _split_reasoning(template),
        "{{- " + " + ".join(x for x in (_literal(template.generation) if template.generation else "", _wrap(template.assistant, _answer(template)), _literal(template.separator) if template.separator else "") if x) + " -}}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}{{- " + _literal(template.generation + template.generation_suffix) + " -}}",
    ]
    if template.thinking is not None and template.thinking.every_turn and template.thinking.empty:
        lines.append("{%- if enable_thinking is false -%}{{- " + _literal(template.thinking.empty) + " -}}{%- endif -%}")
    if template.suffix:
        lines.append("{%- elif loop_messages and loop_messages[-1]['role'] == 'assistant' -%}{{- " + _literal(template.suffix) + " -}}")
    lines.append("{%- endif -%}")
    return "".join(line for line in lines if line)


def named_template_jinja(template: Template) -> str:
    """The jinja a named template stands for: its official jinja when tunelab ships one, else `jinja_for`."""
    shipped = getattr(template, "jinja", "")  # the names that render an official jinja (official_jinja.py)
    if shipped:
        return shipped
    if template.saved_jinja:
        from tunelab.data.templates.official_jinja import read_jinja

        return read_jinja(template.saved_jinja)
    return jinja_for(template)


def chat_template_for_saving(tokenizer: Any, template: Template) -> str:
    """The chat template to write with a trained model: the tokenizer's own, else the named template's."""
    own = getattr(tokenizer, "chat_template", None)
    if own:
        return own if isinstance(own, str) else own.get("default", next(iter(own.values())))
    return named_template_jinja(template)


def prepare_tokenizer_for_saving(tokenizer: Any, template: Template) -> Any:
    """Set `tokenizer.chat_template` (only when it has none) before `save_pretrained`."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = named_template_jinja(template)
    return tokenizer
