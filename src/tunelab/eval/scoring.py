"""The answer to a multiple-choice question: the choice letter with the highest next-token score.

One forward pass per batch instead of generation: the prompt ends where the assistant would write
its answer, so the logits at the last prompt position already rank the letters. Batches are left
padded with position ids counted per row, so padding never changes a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def letter_token_ids(tokenizer: Any, letters: Sequence[str]) -> dict[str, int]:
    """The token a model writes for each letter right after the generation prompt (the anchor's rule:
    the last token of the letter encoded alone)."""
    ids = {}
    for letter in letters:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if not encoded:
            raise ValueError(f"the tokenizer encodes the letter {letter!r} to no token")
        ids[letter] = encoded[-1]
    return ids


def pick_letters(last_logits: Any, letter_ids: dict[str, int], allowed: Sequence[Sequence[str]]) -> list[tuple[str, dict[str, float]]]:
    """For each row of `last_logits` [batch, vocab]: the best allowed letter and the softmax over them."""
    import torch

    picks = []
    for row, letters in zip(last_logits, allowed):
        scores = row[[letter_ids[letter] for letter in letters]].float()
        probs = torch.softmax(scores, dim=-1).tolist()
        best = int(torch.argmax(scores).item())
        picks.append((letters[best], {letter: round(p, 6) for letter, p in zip(letters, probs)}))
    return picks


def last_token_logits(model: Any, prompts: Sequence[Sequence[int]], pad_id: int) -> Any:
    """Logits at each prompt's last token, one row per prompt, from one forward pass.

    Left padding puts every last token in the final column, so only that column's logits are
    computed (`logits_to_keep=1`): a 5-shot batch never materialises [batch, length, vocab] logits.
    Position ids are counted from each row's first real token, so padding does not shift them.
    """
    import torch

    from tunelab.data.batching import pad_left

    ids, mask = pad_left(prompts, pad_id)
    positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}
    with torch.inference_mode():
        try:
            logits = model(**inputs, logits_to_keep=1).logits
        except TypeError:  # a model class without `logits_to_keep`: all positions, then the last
            logits = model(**inputs).logits
    return logits[:, -1, :]


def score_prompts(model: Any, prompts: Sequence[Sequence[int]], allowed: Sequence[Sequence[str]],
                  letter_ids: dict[str, int], *, pad_id: int, batch_size: int) -> list[tuple[str, dict[str, float]]]:
    """The chosen letter (and letter probabilities) of every prompt, `batch_size` prompts per pass."""
    picks: list[tuple[str, dict[str, float]]] = []
    for start in range(0, len(prompts), max(batch_size, 1)):
        chunk = slice(start, start + max(batch_size, 1))
        picks += pick_letters(last_token_logits(model, prompts[chunk], pad_id), letter_ids, allowed[chunk])
    return picks
