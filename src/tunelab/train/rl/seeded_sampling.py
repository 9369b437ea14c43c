"""Sampling that does not depend on how a step is split (grpo and ppo).

`model.generate` draws every row's tokens from one random stream, so the completions of a prompt depend
on which other prompts share its batch: batch 8 × accumulation 1 and batch 2 × accumulation 4 would
train on different samples. Here each completion has its own seed (the run's seed, the optimizer step,
the prompt's tokens, its place in the group) and each token is drawn by inverting the cumulative
distribution that generate's own temperature / top-k / top-p processing gives, with that seed's
uniform number for the position. The distribution is the same as generate's sampling; the draws are
the same however prompts are batched, accumulated or spread over processes, and on resume.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import Counter
from typing import Any

import torch

from tunelab.train.losses.logprobs import unwrap
from tunelab.train.rl.rollout import Rollout, completion_mask


def _uniform(seed: int, position: int) -> float:
    """A uniform number in [0, 1), a pure function of (seed, position)."""
    digest = hashlib.blake2b(f"{seed}|{position}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 11) / float(1 << 53)


class PromptSeeds:
    """One seed per completion: the run's seed, the optimizer step (and train / eval), the prompt's tokens,
    the completion's index in its group, and how often the same prompt came before in this step."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.key: tuple[Any, ...] | None = None
        self.seen: Counter[str] = Counter()

    def __call__(self, step: int, mode: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 group_size: int) -> list[int]:
        if self.key != (step, mode):
            self.key, self.seen = (step, mode), Counter()
        seeds = []
        for row, mask in zip(input_ids, attention_mask, strict=True):
            prompt = hashlib.blake2b(str(row[mask.bool()].tolist()).encode(), digest_size=16).hexdigest()
            occurrence = self.seen[prompt]
            self.seen[prompt] += 1
            for index in range(group_size):
                key = f"{self.seed}|{mode}|{step}|{prompt}|{occurrence}|{index}".encode()
                seeds.append(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little"))
        return seeds


class SeededSampling:
    """A logits processor that samples each row's next token with its own seed (put last: after it every
    score but the drawn token's is -inf, so greedy decoding emits the draw)."""

    def __init__(self, seeds: list[int], prompt_length: int) -> None:
        self.seeds, self.prompt_length = seeds, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        position = input_ids.shape[1] - self.prompt_length
        uniform = torch.tensor([_uniform(s, position) for s in self.seeds], dtype=torch.float64, device=scores.device)
        cumulative = torch.softmax(scores.double(), dim=-1).cumsum(-1)
        drawn = torch.searchsorted(cumulative, (uniform * cumulative[:, -1]).unsqueeze(-1), right=True)
        drawn = drawn.clamp(max=scores.shape[-1] - 1)
        out = torch.full_like(scores, -math.inf)
        return out.scatter_(1, drawn, 0.0)


@torch.no_grad()
def seeded_sample(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, generation_config: Any,
                  stop_ids: list[int], pad_token_id: int, seeds: list[int]) -> Rollout:
    """`rollout.sample` with one seed per completion (len(seeds) = rows × completions per prompt, each prompt
    repeated in place), the draws independent of the batch (see above)."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    repeats = len(seeds) // input_ids.shape[0]
    input_ids = input_ids.repeat_interleave(repeats, dim=0)
    attention_mask = attention_mask.repeat_interleave(repeats, dim=0)
    gen = generation_config
    processors: list[Any] = []
    if gen.temperature is not None and float(gen.temperature) != 1.0:
        processors.append(TemperatureLogitsWarper(float(gen.temperature)))
    if gen.top_k:
        processors.append(TopKLogitsWarper(int(gen.top_k)))
    if gen.top_p is not None and float(gen.top_p) < 1.0:
        processors.append(TopPLogitsWarper(float(gen.top_p)))
    prompt_length = input_ids.shape[1]
    processors.append(SeededSampling(seeds, prompt_length))
    greedy = copy.deepcopy(gen)
    greedy.do_sample, greedy.temperature, greedy.top_k, greedy.top_p = False, None, None, None
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    try:
        output = inner.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=greedy,
                                logits_processor=LogitsProcessorList(processors))
    finally:
        inner.train(was_training)
    completions = output[:, prompt_length:]
    mask = completion_mask(completions, stop_ids)
    completions = completions.masked_fill(mask == 0, pad_token_id)
    sequences = torch.cat((output[:, :prompt_length], completions), dim=1)
    return Rollout(sequences, torch.cat((attention_mask, mask.long()), dim=1), prompt_length, mask)
