"""A named template's special markup (`<|eot_id|>`, `<|im_start|>`, `<_user>` ...) must be single tokens of
the tokenizer. Otherwise training silently learns the markup as text pieces: the trained span bleeds into
the next header's first piece, and generation never stops on an end-of-turn token the labels never hold.

Markup is recognised by the shapes model families give their control tokens; plain-text templates
(alpaca, vicuna, default ...) have none and always pass.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.base import Template
from tunelab.data.templates.markup import BOS, CONTENT, EOS
from tunelab.errors import UserError

_CONTROL_TOKEN = re.compile(
    r"<\|[^<>|\s]+\|>"  # <|im_start|>, <|eot_id|>, <|user|> (ChatML, Llama 3, GLM, Phi)
    r"|<｜[^<>｜]+｜>"  # <｜User｜> (DeepSeek V3 / R1)
    r"|<_[a-z]+>"  # <_user>, <_bot>, <_end> (TeleChat)
    r"|<reserved_\d+>"  # Baichuan2
    r"|<(?:start|end)_of_turn>"  # Gemma
    r"|<(?:sep|eod|sop)>"  # Yuan, GLM-4
    r"|\[gMASK\]"  # ChatGLM / GLM-4
    r"|<\|[a-z_]+>|<[a-z_]+\|>"  # <|turn>, <turn|>, <|channel> (Gemma 4)
    r"|<seed:[a-z_]+>"  # <seed:bos>, <seed:eos> (Seed-OSS)
)


#: templates whose official tokenizer writes their `<|...|>` markup as plain text (Zephyr's Mistral vocabulary)
TEXT_MARKUP_TEMPLATES = frozenset({"zephyr"})


def template_markup(template: Template) -> tuple[str, ...]:
    """The control tokens the template writes around turns, in first-seen order. Extra stop words are not
    required (Llama 3.0's vocabulary has no `<|eom_id|>`, which 3.1 added); the end-of-turn token is.

    A name that renders an official jinja has no format fields: its markup is read off a rendering of a
    small conversation (the jinja's own bos / eos variables left empty, as they are the tokenizer's)."""
    if template.name in TEXT_MARKUP_TEMPLATES:
        return ()
    parts = (template.prefix, template.system, template.user, template.generation, template.assistant,
             template.separator, template.suffix, template.observation or "", template.function or "",
             template.end_of_turn)
    text = "".join(parts).replace(CONTENT, " ").replace(BOS, " ").replace(EOS, " ")
    if getattr(template, "jinja", "") and template.name != "auto":
        text += _rendered_markup(template)
    return tuple(dict.fromkeys(_CONTROL_TOKEN.findall(text)))


def _rendered_markup(template: Template) -> str:
    probe = [Message(Role.USER, " "), Message(Role.ASSISTANT, " "), Message(Role.USER, " ")]
    bare = replace(template, special=(("bos_token", ""), ("eos_token", "")))  # type: ignore[call-arg]  # AutoTemplate's
    try:
        return bare.render_text(probe, system=" ", add_generation_prompt=True)
    except UserError:  # a jinja that refuses the probe: its markup is unknown, nothing to require
        return ""


def is_single_token(tokenizer: Any, piece: str) -> bool:
    """The tokenizer writes `piece` as one token of its own (a vocabulary entry, not text pieces)."""
    ids = tokenizer.encode(piece, add_special_tokens=False)
    if len(ids) == 1:
        return True
    token_id = tokenizer.convert_tokens_to_ids(piece)
    return token_id is not None and token_id != tokenizer.unk_token_id


def missing_markup(template: Template, tokenizer: Any) -> list[str]:
    """The template's control tokens that the tokenizer does not have as tokens."""
    return [piece for piece in template_markup(template) if not is_single_token(tokenizer, piece)]


def markup_problem(template: Template, tokenizer: Any, model: str | None = None) -> str | None:
    """One message naming the missing tokens and the three ways out, or None when all are tokens."""
    missing = missing_markup(template, tokenizer)
    if not missing:
        return None
    whose = f" of '{model}'" if model else ""
    listed = ",".join(missing)
    return (f"template: {template.name} writes {', '.join(missing)}, which the tokenizer{whose} does not have as "
            f"tokens, so they would be trained as text pieces and generation would not stop at the end of a turn. "
            f"Use template: auto (the tokenizer's own chat template), the template of this model's family "
            f"(`tunelab template list`), or add them: new_special_tokens: {listed} with resize_vocab: true.")
