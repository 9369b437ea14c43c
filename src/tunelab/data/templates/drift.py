"""The drift guard: does the named template write conversations the way the model's own chat template does?

A named template (`template: qwen`) is a choice of layout. When the tokenizer ships a jinja chat template
of its own and the two disagree, the model is trained (or prompted) in one layout while every tool that
reads `tokenizer_config.json` uses the other, and nothing fails: answers just get worse. So whenever a
named template meets a tokenizer with its own jinja, both render the same small probe conversations and
the first difference is reported once, with the two texts side by side and the two ways out
(`template: auto`, or `check_template: false` when the named layout is intended).

This module only compares and words the warning; `tunelab template check` prints the full comparison.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.base import SpecialTokens, Template
from tunelab.errors import UserError
from tunelab.utils.logging import log_once

if TYPE_CHECKING:
    from tunelab.config.data_args import DataArguments

logger = logging.getLogger("tunelab.data.templates")

#: characters shown before / after the first difference (short enough for one readable log line)
BEFORE, AFTER = 16, 24
PROBE_SYSTEM = "You are a helpful assistant."
PROBE_MESSAGES = (
    Message(Role.USER, "Hello!"),
    Message(Role.ASSISTANT, "Hi, how can I help?"),
    Message(Role.USER, "What is 2 + 2?"),
    Message(Role.ASSISTANT, "2 + 2 = 4."),
    Message(Role.USER, "And 3 + 3?"),
)


@dataclass(frozen=True)
class Probe:
    """One probe conversation: two user / assistant turns, then a generation prompt after a third user turn."""

    name: str
    system: str | None
    messages: tuple[Message, ...] = PROBE_MESSAGES


#: with a system prompt first: a tokenizer whose jinja refuses system turns is compared on the second only
PROBES = (Probe("with a system prompt", PROBE_SYSTEM), Probe("without a system prompt", None))


@dataclass(frozen=True)
class Comparison:
    """Both renderings of one probe: the named template's and the model's own jinja's.

    `refused` says why the probe was not compared (a jinja raising "System role not supported"); the
    texts are then empty.
    """

    probe: str
    named: str = ""
    own: str = ""
    named_ids: tuple[int, ...] = ()
    own_ids: tuple[int, ...] = ()
    refused: str = ""

    @property
    def compared(self) -> bool:
        return not self.refused

    @property
    def offset(self) -> int | None:
        """The first character where the renderings differ; None when they are identical (or not compared)."""
        if self.refused or self.named == self.own:
            return None
        return next((i for i, (a, b) in enumerate(zip(self.named, self.own)) if a != b), min(len(self.named), len(self.own)))


@dataclass(frozen=True)
class Drift:
    """The first difference between a named template and the model's own chat template."""

    template: str
    model: str
    probe: str
    offset: int
    named_window: str  # the named template's text around `offset` (from `offset - BEFORE`)
    own_window: str  # the model's own template's text over the same characters
    named_ids: tuple[int, ...]
    own_ids: tuple[int, ...]
    compared: tuple[str, ...]  # the probes compared (the system-prompt probe is left out when the jinja refuses it)

    def side_by_side(self) -> str:
        """Both windows, repr'd, in one line: what the warning and `template check` show."""
        return f"'{self.template}' writes {self.named_window!r} where the model's own template writes {self.own_window!r}"


def own_jinja(tokenizer: Any) -> str:
    """The tokenizer's own chat template ("" when it has none); several named ones: "default", as transformers."""
    jinja = getattr(tokenizer, "chat_template", None)
    if isinstance(jinja, dict):
        jinja = jinja.get("default")
    return jinja if isinstance(jinja, str) else ""


def comparable(template: Template, tokenizer: Any) -> bool:
    """A named template and a tokenizer with a jinja of its own: there is something to compare."""
    return template.name != "auto" and bool(own_jinja(tokenizer))


def compare(
    template: Template,
    tokenizer: Any,
    *,
    default_system: str | None = None,
    enable_thinking: bool = True,
) -> list[Comparison]:
    """Every probe rendered by `template` and by the tokenizer's own jinja, with its special tokens.

    `default_system` is the DataArguments override: `template: auto` would write it too, so the model's
    own side gets it as well (the comparison is about layout, not about a system text the user chose).
    """
    own = _own_template(tokenizer)
    if default_system is not None:
        own = own.with_overrides(default_system=default_system)
    tokens = SpecialTokens.from_tokenizer(tokenizer)
    results = []
    for probe in PROBES:
        options: dict[str, Any] = {"system": probe.system, "add_generation_prompt": True, "enable_thinking": enable_thinking}
        try:
            own_text = own.render_text(probe.messages, **options)
        except UserError as error:  # e.g. Gemma's "System role not supported"
            results.append(Comparison(probe.name, refused=f"the model's own chat template refuses it ({error.message})"))
            continue
        try:
            named_text = template.render_text(probe.messages, tokens=tokens, **options)
        except UserError as error:
            results.append(Comparison(probe.name, refused=f"'{template.name}' refuses it ({error.message})"))
            continue
        results.append(Comparison(probe.name, named_text, own_text, _ids(tokenizer, named_text), _ids(tokenizer, own_text)))
    return results


def find_drift(
    template: Template,
    tokenizer: Any,
    *,
    model: str | None = None,
    default_system: str | None = None,
    enable_thinking: bool = True,
) -> Drift | None:
    """The first difference on the probes, or None: they agree, or there is nothing to compare."""
    if not comparable(template, tokenizer):
        return None
    results = compare(template, tokenizer, default_system=default_system, enable_thinking=enable_thinking)
    return first_drift(results, template.name, model or model_name(tokenizer))


def first_drift(results: list[Comparison], template: str, model: str) -> Drift | None:
    """The first difference among compared probes (None: all identical, or none could be compared)."""
    compared = tuple(result.probe for result in results if result.compared)
    for result in results:
        offset = result.offset
        if offset is None:
            continue
        start = max(0, offset - BEFORE)
        return Drift(
            template=template,
            model=model,
            probe=result.probe,
            offset=offset,
            named_window=result.named[start : offset + AFTER],
            own_window=result.own[start : offset + AFTER],
            named_ids=result.named_ids,
            own_ids=result.own_ids,
            compared=compared,
        )
    if not compared:
        logger.info("template: '%s' not compared with the chat template of %s: %s", template, model,
                    "; ".join(result.refused for result in results))
    return None


#: what the difference means where it was found, and the sentence that says how to use the model's own layout
_CONSEQUENCES = {
    "training": (
        "The model would be trained on the layout of '{template}', while the saved tokenizer keeps the model's own "
        "chat template, so every tool that reads it (transformers, vLLM, Ollama) would prompt the fine-tuned model "
        "in a layout it was not trained on. To train on the model's own layout, set `template: auto`"
    ),
    "inference": (
        "tunelab prompts the model with '{template}': if it was trained with another template (its own, as "
        "`template: auto` uses), it will answer in a layout it was not trained on. If it was trained on its own "
        "chat template, set `template: auto`"
    ),
    "export": (
        "The export is checked, and its Ollama Modelfile written, with '{template}', while the exported tokenizer "
        "keeps the model's own chat template. To export with the model's own layout, set `template: auto`"
    ),
}


def drift_message(drift: Drift, where: str) -> str:
    """The one warning line: what differs (side by side), what it means `where`, and the two ways out."""
    if where not in _CONSEQUENCES:
        raise ValueError(f"where must be one of {', '.join(_CONSEQUENCES)}, not {where!r}")
    only = "" if len(drift.compared) == len(PROBES) else f" (compared {', '.join(drift.compared)} only)"
    return (
        f"template: '{drift.template}' does not write conversations the way the chat template of {drift.model} "
        f"does: on the probe {drift.probe}{only}, at character {drift.offset}, {drift.side_by_side()}. "
        + _CONSEQUENCES[where].format(template=drift.template)
        + f"; if '{drift.template}' is what you want, silence this with `check_template: false`. "
        f"`tunelab template check --model_name_or_path {drift.model} --template {drift.template}` shows both "
        "renderings in full."
    )


def warn_on_drift(
    template: Template,
    tokenizer: Any,
    data: DataArguments,
    *,
    where: str,
    model: str | None = None,
) -> Drift | None:
    """Log one warning when the named template differs from the tokenizer's own (`data.check_template` on).

    Called by training (`train/recipe.py`), inference (`infer/loader.py`: chat, webchat, api) and export
    (`export/run.py`) right after the template is chosen. Returns the difference found (None: silent).
    """
    if not data.check_template:
        return None
    drift = find_drift(template, tokenizer, model=model, default_system=data.default_system,
                       enable_thinking=data.enable_thinking is not False)
    if drift is not None:
        log_once(logger, drift_message(drift, where), level=logging.WARNING)
    return drift


def model_name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or "the model")


def _ids(tokenizer: Any, text: str) -> tuple[int, ...]:
    """Token ids as `apply_chat_template` tokenizes a rendering: the template writes its own special tokens."""
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def _own_template(tokenizer: Any) -> Template:
    """The tokenizer's own jinja as a template, built exactly as `template: auto` builds it."""
    from tunelab.data.templates.auto import auto_template

    return auto_template(tokenizer, announce=False)
