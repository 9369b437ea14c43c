"""Encoding `Example`s into token ids and labels, for every training stage, and prompts for inference.

All functions are pure: a tokenizer, a `Template` and options in, dicts of lists out. Label rule
(docs/templates.md): prompt tokens are -100; each assistant turn's content and its end-of-turn
token are trained; `train_on_prompt` trains everything; `mask_history` trains only the last turn.
Truncation to `cutoff_len` follows `encode_truncate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.config.data_args import DataArguments
from tunelab.config.stages import DataKind, get_stage_spec
from tunelab.data.conversation import Example, Message, Role
from tunelab.data.encode_tokens import Token, tokenize_segments
from tunelab.data.encode_truncate import last_response_len, truncate
from tunelab.data.labels import IGNORE_INDEX
from tunelab.data.templates.base import Segment, SpecialTokens, Template
from tunelab.data.templates.tools import normalize_tools
from tunelab.errors import UserError


@dataclass(frozen=True)
class EncodeOptions:
    """The DataArguments keys that shape encoding (see `from_data_args`)."""

    cutoff_len: int = 2048
    train_on_prompt: bool = False
    mask_history: bool = False
    enable_thinking: bool = True

    @classmethod
    def from_data_args(cls, data_args: DataArguments) -> EncodeOptions:
        thinking = getattr(data_args, "enable_thinking", True)
        return cls(
            cutoff_len=int(data_args.cutoff_len),
            train_on_prompt=bool(data_args.train_on_prompt),
            mask_history=bool(data_args.mask_history),
            enable_thinking=True if thinking is None else bool(thinking),
        )


def render_segments(
    tokenizer: Any,
    template: Template,
    messages: Sequence[Message],
    *,
    system: str | None = None,
    tools: Any = None,
    add_generation_prompt: bool = False,
    enable_thinking: bool = True,
    training: bool = True,
) -> list[Segment]:
    """Rendered segments, plus the final eos of efficient-eos templates when training."""
    segments = template.render(
        messages,
        system=system,
        tools=normalize_tools(tools),
        tokens=SpecialTokens.from_tokenizer(tokenizer),
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
    )
    if training and template.efficient_eos and segments and segments[-1].response and tokenizer.eos_token:
        segments.append(Segment(tokenizer.eos_token, segments[-1].turn, response=True, extra=True))
    return segments


def labels_of(tokens: Sequence[Token], *, train_on_prompt: bool, last_turn_only: bool) -> list[int]:
    if train_on_prompt:
        return [token.id for token in tokens]
    last = max((token.turn for token in tokens if token.response), default=-1)
    return [
        token.id if token.trained and (not last_turn_only or token.turn == last) else IGNORE_INDEX for token in tokens
    ]


def encode_supervised(
    tokenizer: Any,
    template: Template,
    messages: Sequence[Message],
    *,
    system: str | None = None,
    tools: Any = None,
    cutoff_len: int = 2048,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    enable_thinking: bool = True,
) -> dict[str, list[int]]:
    """`input_ids`, `attention_mask` and `labels` of a supervised conversation (ends with an answer)."""
    if not messages or messages[-1].role not in (Role.ASSISTANT, Role.FUNCTION):
        raise UserError("a supervised example must end with an assistant (or function_call) turn")
    segments = render_segments(
        tokenizer, template, messages, system=system, tools=tools, enable_thinking=enable_thinking
    )
    tokens = truncate(tokenize_segments(tokenizer, segments), cutoff_len, last_first=mask_history)
    labels = labels_of(tokens, train_on_prompt=train_on_prompt, last_turn_only=mask_history)
    return {"input_ids": [t.id for t in tokens], "attention_mask": [1] * len(tokens), "labels": labels}


def encode_pairwise(
    tokenizer: Any, template: Template, example: Example, *, options: EncodeOptions = EncodeOptions()
) -> dict[str, list[int]]:
    """Preference pair: `chosen_*` and `rejected_*` ids/labels sharing one prompt; only answers trained."""
    if example.chosen is None or example.rejected is None:
        raise UserError("a preference example needs both 'chosen' and 'rejected'")
    encoded = {}
    pairs = {}
    for key, answer in (("chosen", example.chosen), ("rejected", example.rejected)):
        segments = render_segments(
            tokenizer,
            template,
            (*example.messages, answer),
            system=example.system,
            tools=example.tools,
            enable_thinking=options.enable_thinking,
        )
        pairs[key] = tokenize_segments(tokenizer, segments)
    longest = max(last_response_len(tokens) for tokens in pairs.values())
    for key, tokens in pairs.items():
        kept = truncate(tokens, options.cutoff_len, last_first=True, response_len=longest)
        labels = labels_of(kept, train_on_prompt=options.train_on_prompt, last_turn_only=True)
        encoded[f"{key}_input_ids"] = [t.id for t in kept]
        encoded[f"{key}_attention_mask"] = [1] * len(kept)
        encoded[f"{key}_labels"] = labels
    return encoded


def encode_kto(
    tokenizer: Any, template: Template, example: Example, *, options: EncodeOptions = EncodeOptions()
) -> dict[str, Any]:
    """KTO example: a supervised encoding of its last answer plus `kto_tag` (desirable or not).

    The KL reference (the prompt paired with another example's answer) is built by the KTO
    collator from neighbouring rows, so it is not part of one example's encoding.
    """
    if example.kto_tag is None:
        raise UserError("a KTO example needs a boolean 'kto_tag'")
    encoded: dict[str, Any] = encode_supervised(
        tokenizer,
        template,
        example.messages,
        system=example.system,
        tools=example.tools,
        cutoff_len=options.cutoff_len,
        train_on_prompt=options.train_on_prompt,
        mask_history=True,
        enable_thinking=options.enable_thinking,
    )
    encoded["kto_tag"] = bool(example.kto_tag)
    return encoded


def encode_pretrain(
    tokenizer: Any, template: Template, text: str, *, cutoff_len: int | None = None
) -> dict[str, list[int]]:
    """Plain text + the template's end-of-text token; bos once when the model family uses one."""
    end = SpecialTokens.from_tokenizer(tokenizer).fill(template.text_end)
    ids = list(tokenizer(text + end, add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    wants_bos = "{{bos_token}}" in template.prefix or bool(getattr(tokenizer, "add_bos_token", False))
    if bos is not None and wants_bos and (not ids or ids[0] != bos):
        ids.insert(0, bos)
    if cutoff_len is not None:
        ids = ids[:cutoff_len]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)}


def encode_unsupervised(
    tokenizer: Any, template: Template, example: Example, *, options: EncodeOptions = EncodeOptions()
) -> dict[str, list[int]]:
    """PPO / GRPO / prediction: the prompt with its generation header as `input_ids`, the reference
    answer (if any) as `labels`."""
    messages = example.messages
    answer: Message | None = None
    if messages and messages[-1].role in (Role.ASSISTANT, Role.FUNCTION):
        messages, answer = messages[:-1], messages[-1]
    prompt = encode_prompt(
        tokenizer, template, messages, system=example.system, tools=example.tools, enable_thinking=options.enable_thinking
    )[-options.cutoff_len :]
    labels: list[int] = []
    if answer is not None:
        full = tokenize_segments(
            tokenizer,
            render_segments(tokenizer, template, (*messages, answer), system=example.system, tools=example.tools),
        )
        labels = [t.id for t in full if t.response and t.turn == max(x.turn for x in full if x.response)]
    return {"input_ids": prompt, "attention_mask": [1] * len(prompt), "labels": labels}


def encode_prompt(
    tokenizer: Any,
    template: Template,
    messages: Sequence[Message],
    system: str | None = None,
    tools: Any = None,
    *,
    enable_thinking: bool = True,
) -> list[int]:
    """Token ids of a conversation ending with the generation prompt (inference and serving)."""
    segments = render_segments(
        tokenizer,
        template,
        messages,
        system=system,
        tools=tools,
        add_generation_prompt=True,
        enable_thinking=enable_thinking,
        training=False,
    )
    return [token.id for token in tokenize_segments(tokenizer, segments)]


def stop_token_ids(tokenizer: Any, template: Template) -> list[int]:
    """Ids that end generation: the template's end-of-turn token, its stop words and eos."""
    words = [SpecialTokens.from_tokenizer(tokenizer).fill(template.end_of_turn), *template.stop_words]
    ids: list[int] = []
    for word in words:
        if not word:
            continue
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None and eos not in ids:
        ids.append(int(eos))
    return ids


def _encode_text(tokenizer: Any, template: Template, example: Example, options: EncodeOptions) -> dict[str, Any]:
    if example.text is None:
        raise UserError("pre-training (stage: pt) needs plain-text examples")
    return encode_pretrain(tokenizer, template, example.text, cutoff_len=None)


def _encode_chat(tokenizer: Any, template: Template, example: Example, options: EncodeOptions) -> dict[str, Any]:
    return encode_supervised(
        tokenizer,
        template,
        example.messages,
        system=example.system,
        tools=example.tools,
        cutoff_len=options.cutoff_len,
        train_on_prompt=options.train_on_prompt,
        mask_history=options.mask_history,
        enable_thinking=options.enable_thinking,
    )


#: the encoder of each kind of training data (the stage table says which kind a stage reads)
ENCODERS: dict[DataKind, Callable[[Any, Template, Example, EncodeOptions], dict[str, Any]]] = {
    DataKind.TEXT: _encode_text,
    DataKind.CHAT: _encode_chat,
    DataKind.PAIR: lambda tokenizer, template, example, options: encode_pairwise(tokenizer, template, example,
                                                                                 options=options),
    DataKind.KTO: lambda tokenizer, template, example, options: encode_kto(tokenizer, template, example, options=options),
    DataKind.PROMPT: lambda tokenizer, template, example, options: encode_unsupervised(tokenizer, template, example,
                                                                                       options=options),
}


def trained_tokens(encoded: dict[str, Any], kind: DataKind) -> int | None:
    """How many tokens of an encoded example are prediction targets (None for prompts, which carry no labels
    to train on). Position 0 never is one (nothing precedes it); a pair counts its poorer side, since a pair
    whose chosen or rejected answer has no trained token has no preference to learn."""
    if kind is DataKind.PROMPT:
        return None
    if kind is DataKind.PAIR:
        return min(sum(label != IGNORE_INDEX for label in encoded[f"{side}_labels"][1:]) for side in ("chosen", "rejected"))
    return sum(label != IGNORE_INDEX for label in encoded["labels"][1:])


def encode_as(
    tokenizer: Any, template: Template, example: Example, kind: DataKind, options: EncodeOptions = EncodeOptions()
) -> dict[str, Any]:
    """Encode one example as `kind` of training data: text, chat, pair, kto or prompt."""
    return ENCODERS[kind](tokenizer, template, example, options)


def encode_example(
    tokenizer: Any, template: Template, example: Example, stage: str, options: EncodeOptions = EncodeOptions()
) -> dict[str, Any]:
    """Encode one example the way training stage `stage` reads it (the stage table's data kind)."""
    return encode_as(tokenizer, template, example, get_stage_spec(stage).data, options)
