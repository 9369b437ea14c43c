"""Looking templates up by name: `get_template(name, tokenizer)` and `list_templates()`.

The registry is an immutable mapping built once from `families.TEMPLATES`; nothing registers
templates at run time, so every process sees the same set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from tunelab.data.templates.base import Template
from tunelab.data.templates.families import TEMPLATES
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.data.templates")

ALIASES: Mapping[str, str] = MappingProxyType({"qwen2": "qwen", "qwen2.5": "qwen", "internlm2": "intern2", "deepseek-v3": "deepseek3"})
REGISTRY: Mapping[str, Template] = MappingProxyType({template.name: template for template in TEMPLATES})


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
        logger.info("template: using the named template '%s'", template.name)
    changes: dict[str, Any] = {}
    if tool_format:
        from tunelab.data.templates.tools import get_tool_format

        changes["tool_format"] = get_tool_format(tool_format).name
    if default_system is not None:
        changes["default_system"] = default_system
    return template.with_overrides(**changes) if changes else template
