"""Choosing the next token of ONE sequence from its logits, as `generate` would choose it.

The batched decoder (`infer/batching.py`) runs many sequences through one forward pass, but each keeps
its own rules: its request's logits processors (penalties, logit bias, a grammar: they are stateful and
see only their own sequence), its own temperature / top-k / top-p, and its own random generator, so a
seeded request samples the same tokens whichever requests share its batch. The order is transformers':
repetition penalty, then the request's processors, then the log-probs are read (what the model and the
request's rules make of the next token, before temperature reshapes it), then temperature, top-k, top-p,
then argmax (greedy) or a multinomial draw.

A torch.Generator seeded with `seed` draws the same numbers as the global generator after
`torch.manual_seed(seed)`, so a seeded answer equals the one transformers' `generate` samples alone.
"""

from __future__ import annotations

from typing import Any

from tunelab.infer.engine import TokenLogprob
from tunelab.infer.params import SamplingParams


def request_processors_for(params: SamplingParams, tokenizer: Any, prompt_ids: list[int]) -> list[Any]:
    """The processors one request asks for (infer/logits_processors.py), fresh for one sequence."""
    from tunelab.infer.logits_processors import request_processors

    return list(request_processors(params, tokenizer, prompt_ids))


def token_logprob(scores: Any, token: int, top: int) -> TokenLogprob:
    """The chosen token's log-prob under `scores` ([1, vocab]) and the `top` most likely alternatives."""
    import torch

    logprobs = torch.log_softmax(scores[0].float(), dim=-1)
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        values, ids = torch.topk(logprobs, min(top, logprobs.shape[-1]))
        best = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token_id=int(token), logprob=float(logprobs[token]), top=best)


class TokenChooser:
    """The rules of one sequence: call `choose(ids, scores)` once per step."""

    def __init__(self, params: SamplingParams, processors: list[Any], device: Any) -> None:
        import torch
        from transformers import (
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.processors = list(processors)
        if params.repetition_penalty != 1.0:
            self.processors.insert(0, RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        self.sample = not params.greedy
        self.warpers: list[Any] = []
        if self.sample:
            if params.temperature != 1.0:
                self.warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k:
                self.warpers.append(TopKLogitsWarper(top_k=params.top_k))
            if params.top_p is not None and params.top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(top_p=params.top_p))
        self.logprobs = params.logprobs
        self.generator = None
        if self.sample and params.seed is not None:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(params.seed)

    @property
    def plain_greedy(self) -> bool:
        """Greedy with nothing to apply and nothing to record: the batch takes one argmax for all such rows."""
        return not self.sample and not self.processors and self.logprobs is None

    def choose(self, ids: Any, scores: Any) -> tuple[int, TokenLogprob | None]:
        """The next token given the sequence so far (`ids`, [1, n], no padding) and its float logits ([1, vocab])."""
        import torch

        for processor in self.processors:
            scores = processor(ids, scores)
        if not self.sample:
            token = int(torch.argmax(scores, dim=-1)[0])
            return token, None if self.logprobs is None else token_logprob(scores, token, self.logprobs)
        warped = scores
        for warper in self.warpers:
            warped = warper(ids, warped)
        probs = torch.softmax(warped, dim=-1)
        token = int(torch.multinomial(probs, num_samples=1, generator=self.generator)[0, 0])
        return token, None if self.logprobs is None else token_logprob(scores, token, self.logprobs)
