"""What a chat template is: plain data describing how each kind of turn is written.

A template is a frozen record of format strings, not code: rendering (`render.py`) and encoding
(`tunelab.data.encode`) read these fields, so adding a model family means adding one `Template(...)`
entry in `families.py`. Format strings use three placeholders, resolved at render time:
`{{content}}` (the turn's text), `{{bos_token}}` and `{{eos_token}}` (the tokenizer's own tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tunelab.data.conversation import Message
from tunelab.data.templates.markup import BOS, CONTENT, EOS, Segment, SpecialTokens
from tunelab.data.templates.render import render

__all__ = ["BOS", "CONTENT", "EOS", "Segment", "SpecialTokens", "Template", "Thinking"]


@dataclass(frozen=True)
class Thinking:
    """How a reasoning template writes the `<think>` block of an assistant turn.

    The official Qwen3 template keeps the block only for assistant turns after the last user
    query; turns before it are written without reasoning. `empty` is written (and, with
    `enable_thinking` off, not trained) when an answer has no reasoning.
    """

    open: str = "<think>"
    close: str = "</think>"
    block: str = "<think>\n{reasoning}\n</think>\n\n"
    empty: str = "<think>\n\n</think>\n\n"  # "" : an answer without reasoning gets no block
    history: bool = False  # keep the blocks of turns before the last user query (qwen3: no)
    last_only: bool = False  # only the final turn keeps its block (DeepSeek-R1 drops all others)
    lstrip_answer: bool = True  # the answer after `</think>` loses its leading newlines (qwen3: yes, R1: no)
    every_turn: bool = False  # every answer carries a block, `empty` when it has none (LLaMA-Factory's reasoning format)
    switchable: bool = True  # False: the official generation prompt always opens a block (DeepSeek-R1), so
    # `enable_thinking: false` would train answers the served model is never prompted for: refused


@dataclass(frozen=True)
class Template:
    """One chat format. Field names say where each string goes; see docs/templates.md.

    Rendering of one conversation, in order:
    `prefix`, `system` (unless `system_in_user`), then for every turn
    user -> `user`; observation -> `observation`; assistant/function -> `generation` (prompt)
    + `assistant` (trained: content and end-of-turn) + `separator` (not trained).
    """

    name: str
    description: str
    user: str
    assistant: str = CONTENT + EOS
    generation: str = ""
    separator: str = ""
    system: str = CONTENT
    system_in_user: bool = False  # the system text is written inside the first user turn (llama2, mistral, gemma)
    prefix: str = ""
    suffix: str = ""  # written after a conversation that ends with an answer (no generation prompt)
    generation_suffix: str = ""  # added to the inference generation prompt only (DeepSeek-R1: "<think>\n")
    observation: str | None = None  # None: written like a user turn
    function: str | None = None  # tool-call turns; None: written like an answer (GLM-4 puts the name right after the header)
    default_system: str = ""
    stop_words: tuple[str, ...] = ()  # strings that end generation, besides the end-of-turn token
    end_of_turn: str = EOS  # the token that closes an assistant turn (stop token of inference)
    tool_format: str = "default"
    thinking: Thinking | None = None
    efficient_eos: bool = False  # turns end with the next role token; eos is added once at the end
    strip_content: bool = False  # contents are trimmed (llama2/3, gemma)
    strip_system: bool = False
    text_end: str = EOS  # appended to pre-training documents
    official: str = ""  # the model(s) whose official chat template this matches
    source: str = "official"  # "official": parity-tested against official jinja; "anchor": LLaMA-Factory's format
    # (no official jinja obtainable offline); "tunelab": tunelab's own format (default, empty)
    saved_jinja: str = ""  # a shipped official jinja (resources/chat_templates) saved with a model whose tokenizer has none
    modalities: tuple[str, ...] = ()  # media the family takes ("image", "video", "audio"): docs/multimodal.md
    aliases: tuple[str, ...] = field(default=())

    def with_overrides(self, **changes: object) -> Template:
        """A copy with some fields changed (e.g. `tool_format`, `default_system` from DataArguments)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_reasoning(self) -> bool:
        return self.thinking is not None

    def render(
        self,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        tokens: SpecialTokens | None = None,
        add_generation_prompt: bool = False,
        enable_thinking: bool = True,
    ) -> list[Segment]:
        """The segments of a conversation; see `render.render`. `template: auto` overrides this."""
        return render(
            self,
            messages,
            system=system,
            tools=tools,
            tokens=tokens,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
        )

    def render_text(self, messages: Sequence[Message], **options: Any) -> str:
        """The rendered conversation as one string (what the official jinja would print)."""
        return "".join(segment.text for segment in self.render(messages, **options))
