"""Chat templates: named formats of model families, `template: auto`, tool formats and rendering.

Public entry points: `get_template`, `list_templates`, `Template`, `chat_template_for_saving`.
Encoding of examples into token ids and labels lives in `tunelab.data.encode`.
"""

from tunelab.data.templates.base import Segment, SpecialTokens, Template, Thinking
from tunelab.data.templates.registry import get_template, list_templates
from tunelab.data.templates.saving import chat_template_for_saving, prepare_tokenizer_for_saving

__all__ = [
    "Segment",
    "SpecialTokens",
    "Template",
    "Thinking",
    "chat_template_for_saving",
    "get_template",
    "list_templates",
    "prepare_tokenizer_for_saving",
]
