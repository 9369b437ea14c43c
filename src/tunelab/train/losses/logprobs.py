"""Per-token and per-sequence log-probabilities of labelled tokens, without holding the full logits.

A [batch, length, vocab] float32 logits tensor is the largest thing a preference step builds (for a
150k vocabulary it dwarfs the activations). Here the model runs with `logits_to_keep=1`, the last
hidden states go through the output head only at labelled positions, a chunk of tokens at a time,
and each chunk is checkpointed: its logits exist only while that chunk is computed (forward, and
again in backward), never all at once.
"""

from __future__ import annotations

from typing import Any

import torch

from tunelab.data.batching import SEQUENCE_INDEX_KEY
from tunelab.data.labels import IGNORE_INDEX

DEFAULT_CHUNK_TOKENS = 1024
Tensor = torch.Tensor


def shift_labels(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Labels aligned with the logits that predict them (position t predicts token t+1), and their mask."""
    shifted = labels[:, 1:]
    return shifted, shifted != IGNORE_INDEX


def token_logps_from_logits(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Reference form on full logits [B, T, V]: log-prob of each label ([B, T-1], 0 where masked) and the mask."""
    shifted, mask = shift_labels(labels)
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logps.gather(-1, shifted.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def _chunk_logps(hidden: Tensor, targets: Tensor, head: Any, scale: Any) -> Tensor:
    logits = scale(head(hidden).float())
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def logit_transform(model_config: Any) -> Any:
    """The output-logit adjustments some families apply after the head (soft-capping, scaling)."""
    softcap = getattr(model_config, "final_logit_softcapping", None)
    logit_scale = getattr(model_config, "logit_scale", None)  # cohere: multiplies
    logits_scaling = getattr(model_config, "logits_scaling", None)  # granite: divides

    def apply(logits: Tensor) -> Tensor:
        if logit_scale:
            logits = logits * logit_scale
        if logits_scaling:
            logits = logits / logits_scaling
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return apply


def token_logps_from_hidden(hidden: Tensor, head: Any, labels: Tensor, *, scale: Any = None,
                            chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> tuple[Tensor, Tensor]:
    """Like `token_logps_from_logits`, from the last hidden states [B, T, H] and the output head.

    Only labelled positions go through the head, `chunk_tokens` at a time; under autograd each chunk
    is recomputed in backward (activation checkpointing), so at most one chunk of logits is alive.
    """
    from torch.utils.checkpoint import checkpoint

    shifted, mask = shift_labels(labels)
    states = hidden[:, :-1][mask]  # [N, H], only the tokens whose log-prob is needed
    targets = shifted[mask]
    scale = scale or (lambda x: x)
    pieces = []
    for start in range(0, targets.shape[0], chunk_tokens):
        h, y = states[start : start + chunk_tokens], targets[start : start + chunk_tokens]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_chunk_logps, h, y, head, scale, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(h, y, head, scale))
    flat = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    out = torch.zeros(mask.shape, dtype=torch.float32, device=hidden.device)
    out = out.masked_scatter(mask, flat)
    return out, mask


def unwrap(model: Any) -> Any:
    """The module under DDP / accelerate wrappers (PeftModel and PreTrainedModel are kept)."""
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        model = model.module
    return model


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The keys of a collated batch the model's forward takes: the text ones, and a multimodal batch's media
    (pixel_values, image_grid_thw, ...: data/encode_media.MEDIA_INPUT_NAMES)."""
    from tunelab.data.encode_media import MEDIA_INPUT_NAMES

    return {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids", *MEDIA_INPUT_NAMES) if k in batch}


def forward_hidden(model: Any, batch: dict[str, Any]) -> Tensor:
    """Last (post-norm) hidden states of a forward pass that computes logits for one position only.

    The forward goes through `model` itself (not a sub-module), so DDP / DeepSpeed wrappers and
    LoRA adapters act exactly as in any training step.
    """
    outputs = model(**model_inputs(batch), output_hidden_states=True, logits_to_keep=1, use_cache=False)
    return outputs.hidden_states[-1]


def forward_token_logps(model: Any, batch: dict[str, Any], *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
                        ) -> tuple[Tensor, Tensor]:
    """Per-token log-probs [B, T-1] of `batch["labels"]` under `model`, and the label mask."""
    inner = unwrap(model)
    hidden = forward_hidden(model, batch)
    return token_logps_from_hidden(hidden, inner.get_output_embeddings(), batch["labels"],
                                   scale=logit_transform(inner.config), chunk_tokens=chunk_tokens)


def sequence_logps(token_logps: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed log-prob of each sequence's labelled tokens [B] and their count [B]."""
    return (token_logps * mask).sum(-1), mask.sum(-1)


# -- padding-free batches of several sequences (rm, dpo, kto) --------------------------------------------
#
# A padding-free batch packs its sequences into rows (see `data/batching.pack_sequences`) and carries
# `sequence_index` [rows, T]: the index of the sequence each token belongs to (-1 on padding). The
# functions below turn per-row outputs back into per-sequence ones laid out exactly as a padded batch
# of those sequences would give them, so the losses never see the difference.


def is_padding_free(batch: dict[str, Any]) -> bool:
    return SEQUENCE_INDEX_KEY in batch


def sequence_spans(sequence_index: Tensor) -> tuple[Tensor, Tensor]:
    """Each sequence's first token as an offset into the flattened rows [S], and its length [S]."""
    flat = sequence_index.reshape(-1)
    count = int(flat.max()) + 1
    real = flat >= 0
    slot = torch.where(real, flat, torch.full_like(flat, count))  # padding goes to a spare slot
    positions = torch.arange(flat.numel(), device=flat.device)
    starts = torch.full((count + 1,), flat.numel(), dtype=torch.long, device=flat.device)
    starts = starts.scatter_reduce(0, slot, positions, reduce="amin")
    lengths = torch.zeros(count + 1, dtype=torch.long, device=flat.device).scatter_add(0, slot, real.long())
    return starts[:count], lengths[:count]


def per_sequence_token_logps(token_logps: Tensor, mask: Tensor, sequence_index: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row token log-probs [R, T-1] of packed rows as per-sequence ones [S, max length − 1].

    Row position t predicts the label at t+1; that label's sequence and its place in the sequence give
    where the value lands. Each sequence's first label is ignored in packed rows (nothing of the
    sequence precedes it), so no value crosses from one sequence to the next.
    """
    starts, lengths = sequence_spans(sequence_index)
    width = max(int(lengths.max()) - 1, 0)
    rows, length = sequence_index.shape
    flat_positions = torch.arange(rows * length, device=sequence_index.device).view(rows, length)
    label_sequence = sequence_index[:, 1:][mask]
    label_place = (flat_positions[:, 1:][mask] - starts[label_sequence]) - 1  # column in the padded layout
    out = token_logps.new_zeros((starts.shape[0], width))
    out = out.index_put((label_sequence, label_place), token_logps[mask])
    out_mask = torch.zeros((starts.shape[0], width), dtype=torch.bool, device=mask.device)
    out_mask[label_sequence, label_place] = True
    return out, out_mask


def sequence_token_logps(model: Any, batch: dict[str, Any], *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
                         ) -> tuple[Tensor, Tensor]:
    """Per-sequence token log-probs and mask of a padded or a padding-free batch, laid out as the padded one.

    For a padded batch this is `forward_token_logps`; for a padding-free one the packed rows'
    values are moved back to one row per sequence (`per_sequence_token_logps`).
    """
    if not is_padding_free(batch):
        return forward_token_logps(model, batch, chunk_tokens=chunk_tokens)
    token_logps, mask = forward_token_logps(model, batch, chunk_tokens=chunk_tokens)
    return per_sequence_token_logps(token_logps, mask, batch[SEQUENCE_INDEX_KEY])


def last_token_states(hidden: Tensor, batch: dict[str, Any]) -> Tensor:
    """The hidden state [S, H] at each sequence's last token (padded rows: the row's last real token)."""
    if is_padding_free(batch):
        starts, lengths = sequence_spans(batch[SEQUENCE_INDEX_KEY])
        return hidden.reshape(-1, hidden.shape[-1])[starts + lengths - 1]
    last = batch["attention_mask"].long().sum(-1).clamp(min=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.to(hidden.device)]
