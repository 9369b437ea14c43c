"""Structured output: the constraint one request puts on what the model may write.

A `Constraint` is plain data (a JSON schema or a lark grammar) so that both engines can carry it: the hf
engine turns it into a grammar-constrained logits processor (`infer/logits_processors.py`), the vLLM
engine into vLLM's own structured-output parameters (`json` / `grammar`, llguidance's syntax, which vLLM's
"guidance" backend runs too). Decoding under a grammar makes the output valid by construction, even from
a model that would otherwise write junk.

The grammar library is llguidance (a Rust core, an abi3 wheel, no torch dependency); it compiles JSON
schemas itself and takes lark text with `%json {...}` islands, which is how a tool call in a template's
own format (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`) is expressed (`tool_call_grammar`).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tunelab.errors import UserError
from tunelab.optional_packages import install_command

ConstraintKind = Literal["json_object", "json_schema", "grammar"]

#: JSON is written as Python's json.dumps writes it (", " and ": ", no other whitespace): a model
#: cannot pad the output with endless spaces, and the text is what most models saw in training.
JSON_LAYOUT: dict[str, Any] = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
INSTALL_HINT = install_command("llguidance")  # pip install "tunelab[api]"


@dataclass(frozen=True)
class Constraint:
    """What a generation must match: any JSON object, a JSON schema, or a grammar (llguidance's lark)."""

    kind: ConstraintKind
    schema: Mapping[str, Any] | None = None  # kind "json_schema"
    grammar: str | None = None  # kind "grammar"

    def __hash__(self) -> int:  # a schema is a dict; SamplingParams stays hashable
        return hash((self.kind, self.grammar, json.dumps(self.schema, sort_keys=True, default=str)))

    def json_schema(self) -> Mapping[str, Any] | None:
        """The schema a JSON constraint stands for (any object for json_object); None for a grammar."""
        if self.kind == "json_object":
            return {"type": "object"}
        return self.schema if self.kind == "json_schema" else None


class GrammarLibraryMissing(UserError):
    """llguidance is not installed: structured output cannot be decoded here."""


def _llguidance() -> Any:
    try:
        import llguidance
    except ImportError:
        raise GrammarLibraryMissing(f"structured output needs the grammar library llguidance: {INSTALL_HINT}") from None
    return llguidance


def grammar_text(constraint: Constraint) -> str:
    """The constraint as llguidance's grammar definition (what `LLMatcher` takes)."""
    llg = _llguidance()
    schema = constraint.json_schema()
    if schema is not None:
        return llg.LLMatcher.grammar_from_json_schema(dict(schema), overrides=JSON_LAYOUT)
    return llg.LLMatcher.grammar_from_lark(constraint.grammar or "")


_TOKENIZERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_TOKENIZERS_LOCK = threading.Lock()


def ll_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a Hugging Face tokenizer, built once per tokenizer (building it takes ~1 s)."""
    with _TOKENIZERS_LOCK:
        cached = _TOKENIZERS.get(tokenizer)
        if cached is None:
            import llguidance.hf

            try:
                cached = llguidance.hf.from_tokenizer(tokenizer)
            except ValueError as error:  # a slow (python) tokenizer
                raise UserError(f"structured output needs a fast tokenizer: {error}") from None
            _TOKENIZERS[tokenizer] = cached
        return cached


def problem(constraint: Constraint, tokenizer: Any) -> str | None:
    """Why the constraint cannot be decoded (an unsupported schema keyword, a bad grammar), or None."""
    llg = _llguidance()
    try:
        grammar = grammar_text(constraint)
    except ValueError as error:
        return str(error)
    is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar, ll_tokenizer(tokenizer))
    return messages[0] if is_error else None


def matcher(constraint: Constraint, tokenizer: Any) -> Any:
    """A fresh grammar matcher for one sequence (matchers are stateful)."""
    llg = _llguidance()
    found = llg.LLMatcher(ll_tokenizer(tokenizer), grammar_text(constraint), log_level=0)
    if found.is_error():
        raise UserError(f"structured output: {found.get_error()}")
    return found


# -- tool calls ---------------------------------------------------------------------------------------
def _literal(text: str, special: Mapping[str, int]) -> str:
    """`text` as lark: string literals, with the tokenizer's special tokens as token references."""
    parts: list[str] = []
    rest = text
    while rest:
        hit = min(((rest.find(tok), tok) for tok in special if tok in rest), default=None)
        if hit is None:
            parts.append(json.dumps(rest, ensure_ascii=False))
            break
        at, token = hit
        if at:
            parts.append(json.dumps(rest[:at], ensure_ascii=False))
        parts.append(f"<[{special[token]}]>")
        rest = rest[at + len(token):]
    return " ".join(parts) or '""'


def tool_call_grammar(frames: Sequence[tuple[str, str, Mapping[str, Any] | None]], tokenizer: Any) -> str:
    """Lark text for one call of one of the tools: per tool, the text before its arguments, the arguments'
    JSON schema and the text after (`ToolFormat.call_frame`), so the call is written in the template's format."""
    ll = ll_tokenizer(tokenizer)  # added tokens it treats as special match only as themselves, never as text
    special = {tok: idx for tok, idx in tokenizer.get_added_vocab().items() if ll.is_special_token(idx)}
    rules, names = [], []
    for number, (before, after, parameters) in enumerate(frames):
        schema = dict(parameters) if parameters else {"type": "object"}
        names.append(f"call{number}")
        rules.append(f"call{number}: {_literal(before, special)} args{number} {_literal(after, special)}")
        rules.append(f"args{number}: %json {json.dumps({**schema, 'x-guidance': JSON_LAYOUT})}")
    return "\n".join([f"start: {' | '.join(names)}", *rules])
