"""Perplexity of a data set: exp of the mean negative log-likelihood of its trained tokens.

The tokens are those `tunelab train` would learn from (answers for sft data, all text for plain
text), so the number answers "how surprised is the model by what it was taught". Averaging is per
token over the whole data set (not per example), the usual corpus perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tunelab.data.batching import pad_right
from tunelab.data.labels import IGNORE_INDEX


def token_nll(logits: Any, labels: Any) -> tuple[float, int]:
    """Summed negative log-likelihood of next-token `labels` [batch, seq] under `logits` [batch, seq, vocab],
    and how many tokens it covers; -100 labels are skipped. Position t predicts label t + 1."""
    import torch

    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    if not bool(mask.any()):
        return 0.0, 0
    nll = torch.nn.functional.cross_entropy(shifted_logits[mask], shifted_labels[mask], reduction="sum")
    return float(nll.item()), int(mask.sum().item())


def perplexity(nll_sum: float, tokens: int) -> float:
    """exp(total NLL / tokens); nan when there is no token to score."""
    return math.exp(nll_sum / tokens) if tokens else float("nan")


def encoded_perplexity(model: Any, encoded: Sequence[dict[str, list[int]]], *, pad_id: int, batch_size: int) -> tuple[float, int]:
    """Perplexity and scored-token count over encoded examples (`input_ids` and `labels`), right padded."""
    import torch

    nll_sum, tokens = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(encoded), max(batch_size, 1)):
        batch = encoded[start : start + max(batch_size, 1)]
        padded = pad_right([(e["input_ids"], e["labels"]) for e in batch], pad_id)
        ids, labels, mask = padded["input_ids"], padded["labels"], padded["attention_mask"]
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        part, count = token_nll(logits, labels.to(logits.device))
        nll_sum, tokens = nll_sum + part, tokens + count
    return perplexity(nll_sum, tokens), tokens


def encode_for_perplexity(tokenizer: Any, template: Any, example: Any, options: Any) -> dict[str, list[int]]:
    """Plain text: every token; a conversation: its answers (the chosen one for preference data)."""
    from tunelab.data.encode import encode_pretrain, encode_supervised

    if example.text is not None:
        return encode_pretrain(tokenizer, template, example.text, cutoff_len=options.cutoff_len)
    messages = (*example.messages, example.chosen) if example.chosen is not None else example.messages
    return encode_supervised(tokenizer, template, messages, system=example.system, tools=example.tools,
                             cutoff_len=options.cutoff_len, enable_thinking=options.enable_thinking)


def dataset_perplexity(model: Any, tokenizer: Any, template: Any, examples: Sequence[Any], *, options: Any,
                       batch_size: int) -> tuple[float, int]:
    """Perplexity of conversations or plain texts, encoded as training would encode them."""
    encoded = [encode_for_perplexity(tokenizer, template, ex, options) for ex in examples]
    encoded = [e for e in encoded if e["input_ids"]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return encoded_perplexity(model, encoded, pad_id=pad, batch_size=batch_size)
