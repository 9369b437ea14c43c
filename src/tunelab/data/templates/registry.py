"""Looking templates up by name: `get_template(name, tokenizer)` and `list_templates()`.

The registry is an immutable mapping built once from four tables: `families.TEMPLATES` (records
parity-tested against official jinja), `families_llamafactory` (more of LLaMA-Factory's names, records
checked against official templates from public copies), `official_jinja.JINJA_TEMPLATES` (names that render the
official jinja itself) and `anchor_formats.ANCHOR_TEMPLATES` (LLaMA-Factory's formats where no
official jinja could be obtained; `anchor_multimodal` holds the vision / audio names). Together they accept every template name LLaMA-Factory 0.9.5
accepts. Nothing registers templates at run time, so every process sees the same set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from tunelab.data.templates.anchor_formats import ANCHOR_TEMPLATES
from tunelab.data.templates.anchor_multimodal import ANCHOR_MULTIMODAL_TEMPLATES
from tunelab.data.templates.auto import AutoTemplate
from tunelab.data.templates.base import Template
from tunelab.data.templates.families import TEMPLATES
from tunelab.data.templates.families_llamafactory import LLAMAFACTORY_FAMILIES
from tunelab.data.templates.jinja import special_tokens_map
from tunelab.data.templates.official_jinja import JINJA_TEMPLATES
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.data.templates")

# gemma2: LLaMA-Factory's name for Gemma 2, whose official template is Gemma's (byte-identical, TRL gemma.jinja)
ALIASES: Mapping[str, str] = MappingProxyType(
    {"qwen2": "qwen", "qwen2.5": "qwen", "internlm2": "intern2", "deepseek-v3": "deepseek3", "gemma2": "gemma"}
)
REGISTRY: Mapping[str, Template] = MappingProxyType(
    {template.name: template for template in (*TEMPLATES, *LLAMAFACTORY_FAMILIES, *JINJA_TEMPLATES, *ANCHOR_TEMPLATES, *ANCHOR_MULTIMODAL_TEMPLATES)}
)


def list_templates() -> list[Template]:
    """The named templates, in registry order."""
    return list(REGISTRY.values())


def get_template(
    name: str | None,
    tokenizer: Any = None,
    *,
    tool_format: str | None = None,
    default_system: str | None = None,
) -> Template:
    """The template called `name`; None, "" or "auto" gives the tokenizer's own (see `auto.py`).

    `tool_format` and `default_system` (the DataArguments keys) override the template's own.
    """
    if not name or name == "auto":
        from tunelab.data.templates.auto import auto_template

        template: Template = auto_template(tokenizer, list(REGISTRY))
    else:
        key = ALIASES.get(name, name)
        if key not in REGISTRY:
            import difflib

            close = difflib.get_close_matches(name, list(REGISTRY), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UserError(f"template: unknown template '{name}'.{hint} Known templates: {', '.join(REGISTRY)}, auto")
        template = REGISTRY[key]
        if isinstance(template, AutoTemplate):  # an official jinja: rendered with this tokenizer's bos / eos
            template = replace(template, special=tuple(sorted(special_tokens_map(tokenizer).items())))
        logger.info("template: using the named template '%s'", template.name)
    changes: dict[str, Any] = {}
    if tool_format:
        from tunelab.data.templates.tools import get_tool_format

        changes["tool_format"] = get_tool_format(tool_format).name
    if default_system is not None:
        changes["default_system"] = default_system
    return template.with_overrides(**changes) if changes else template
