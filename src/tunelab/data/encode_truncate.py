"""The `cutoff_len` rule: which tokens of a too-long example are kept.

1. Turns (the prompt before an assistant turn + that turn's answer) are kept whole, first to last
   (last to first with `mask_history`, so the trained turn survives), while they fit.
2. The first turn that does not fit shares the remaining budget like the anchor does: a response
   shorter than half the budget is kept whole and the prompt is cut; else a prompt shorter than half
   is kept whole and the response is cut; else both are cut in proportion to their lengths.
3. A prompt is cut by dropping data tokens from the end of its content; the template's markup (role
   headers, the assistant header) always survives, so the model still sees where its answer starts.
   A response keeps its beginning. Markup (a multi-token header or end-of-turn string) is kept or
   dropped whole, never cut in half; a single special token is never split by construction.
4. Later turns are dropped; so is the text after the last answer when that answer was cut.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunelab.data.encode_tokens import Token


def infer_seqlen(source_len: int, target_len: int, budget: int) -> tuple[int, int]:
    """How many prompt and response tokens of one turn fit in `budget` (the anchor's share rule)."""
    if target_len * 2 < budget:
        max_target = budget
    elif source_len * 2 < budget:
        max_target = budget - source_len
    else:
        max_target = int(budget * (target_len / (source_len + target_len)))
    new_target = min(max_target, target_len)
    new_source = min(max(budget - new_target, 0), source_len)
    return new_source, new_target


def split_turns(tokens: Sequence[Token]) -> list[tuple[list[Token], list[Token]]]:
    """(prompt, response) token lists per turn, in order (text after the last answer is a turn too)."""
    turns: dict[int, tuple[list[Token], list[Token]]] = {}
    for token in tokens:
        prompt, response = turns.setdefault(token.turn, ([], []))
        (response if token.response else prompt).append(token)
    return [turns[key] for key in sorted(turns)]


def truncate(
    tokens: Sequence[Token], cutoff_len: int, *, last_first: bool = False, response_len: int | None = None
) -> list[Token]:
    """The tokens kept under `cutoff_len` (see the module docstring for the rule).

    `response_len` replaces the length of the last turn's response in the share rule, so that the
    chosen and rejected answers of a preference pair keep the same prompt.
    """
    if len(tokens) <= cutoff_len and response_len is None:
        return list(tokens)
    turns = split_turns(tokens)
    last_answer = max((i for i, (_, response) in enumerate(turns) if response), default=-1)
    order = list(range(len(turns)))[::-1] if last_first else list(range(len(turns)))
    kept: dict[int, list[Token]] = {}
    budget = cutoff_len
    for number in order:
        prompt, response = turns[number]
        if budget <= 0:
            break
        target = response_len if (response_len is not None and number == last_answer) else len(response)
        if len(prompt) + max(target, len(response)) <= budget:
            kept[number] = prompt + response
            budget -= len(prompt) + len(response)
            continue
        source_len, target_len = infer_seqlen(len(prompt), target, budget)
        target_len = min(target_len, len(response))
        cut_prompt = _cut_prompt(prompt, source_len)
        if cut_prompt is None:
            break
        cut_response = _keep_start(response, target_len)
        if response and not cut_response:
            break
        kept[number] = cut_prompt + cut_response
        if number == last_answer and len(cut_response) < len(response):
            # the answer lost its end (and its end-of-turn markup): what the template writes after that
            # markup (qwen's "\n" after <|im_end|>) must not stay behind as if the turn had ended
            kept = {n: part for n, part in kept.items() if n <= last_answer}
        break
    return [token for number in sorted(kept) for token in kept[number]]


def _cut_prompt(prompt: list[Token], size: int) -> list[Token] | None:
    """Drop content tokens from the end of the prompt's content until `size` tokens remain."""
    markup = sum(1 for token in prompt if not token.content)
    if markup > size:
        return None
    allowed = size - markup
    result = []
    for token in prompt:
        if token.content:
            if allowed <= 0:
                continue
            allowed -= 1
        result.append(token)
    return result


def _keep_start(tokens: list[Token], size: int) -> list[Token]:
    """The first `size` tokens, minus a markup unit the cut would split."""
    result = list(tokens[:size])
    if result and size < len(tokens) and not result[-1].content and tokens[size].unit == result[-1].unit:
        unit = result[-1].unit
        while result and result[-1].unit == unit:
            result.pop()
    return result


def last_response_len(tokens: Sequence[Token]) -> int:
    """Length of the last answer (0 when there is none)."""
    return next((len(response) for _, response in reversed(split_turns(tokens)) if response), 0)
