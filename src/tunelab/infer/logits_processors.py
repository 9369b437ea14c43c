"""The logits processors one request asks for: OpenAI's presence / frequency penalties, `logit_bias`, and
structured output (a grammar that masks every token the constraint does not allow).

`request_processors` is the one call engines make: fresh objects for ONE sequence on every call (a grammar
matcher remembers what it has consumed), given `input_ids` of shape [1, prompt + generated] without
padding and `scores` of shape [1, vocab]. transformers' own processors do what they already can
(`SequenceBiasLogitsProcessor` for logit_bias); the penalties follow OpenAI's documented formula, which no
transformers processor implements (its `repetition_penalty` is multiplicative and counts the prompt).
"""

from __future__ import annotations

from typing import Any

from transformers import LogitsProcessor

from tunelab.infer.params import SamplingParams


class OpenAIPenalties(LogitsProcessor):
    """logits[t] -= count(t) * frequency_penalty + (count(t) > 0) * presence_penalty, counting only the
    tokens generated so far (OpenAI's definition; vLLM counts the same way)."""

    def __init__(self, prompt_length: int, presence: float, frequency: float) -> None:
        self.prompt_length = prompt_length
        self.presence = presence
        self.frequency = frequency

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_length:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


class GrammarMask(LogitsProcessor):
    """Every token the grammar does not allow next gets -inf; the matcher follows the generated tokens.

    Once the grammar is complete only the end-of-text token stays allowed, so the answer ends there. A token
    the grammar refused (nothing else forces one) puts the matcher in its error state: then only the end
    token is allowed, so a broken generation stops instead of running on unconstrained."""

    def __init__(self, matcher: Any, prompt_length: int, eos_token_id: int) -> None:
        self.matcher = matcher
        self.prompt_length = prompt_length
        self.eos_token_id = eos_token_id
        self.consumed = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        new = input_ids[0, self.prompt_length + self.consumed:].tolist()
        if new:
            self.matcher.consume_tokens(new)
            self.consumed += len(new)
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        if self.matcher.is_error():
            allowed[self.eos_token_id] = True
        else:
            mask = torch.frombuffer(bytearray(self.matcher.compute_logit_bias()), dtype=torch.uint8)
            width = min(mask.numel(), scores.shape[-1])
            allowed[:width] = mask[:width].to(scores.device) > 0
        return scores.masked_fill(~allowed, float("-inf"))


def request_processors(params: SamplingParams, tokenizer: Any, prompt_ids: list[int]) -> list[Any]:
    """The processors `params` ask for, new for one sequence; empty when it asks for none."""
    processors: list[Any] = []
    if params.logit_bias:
        from transformers import SequenceBiasLogitsProcessor

        processors.append(SequenceBiasLogitsProcessor([[[token], float(bias)] for token, bias in params.logit_bias]))
    if params.presence_penalty or params.frequency_penalty:
        processors.append(OpenAIPenalties(len(prompt_ids), params.presence_penalty, params.frequency_penalty))
    if params.constraint is not None:  # last: what the grammar forbids stays forbidden whatever the biases say
        from tunelab.infer.structured import matcher

        processors.append(GrammarMask(matcher(params.constraint, tokenizer), len(prompt_ids), tokenizer.eos_token_id))
    return processors
