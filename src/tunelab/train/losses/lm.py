"""The language-modelling loss computed from the last hidden states, without materialising all logits.

A [tokens, vocab] float32 logits tensor is the largest thing an SFT step builds: for a 150k
vocabulary and 16k tokens it is 9.3 GiB, and the stock loss keeps it (and its gradient) alive
through backward. Here only the labelled positions go through the output head, a chunk of tokens at
a time, and each chunk's gradients (towards the hidden states and the head's weight) are computed
in the forward pass, so a chunk's logits are freed before the next chunk starts and backward only
scales the stored gradients (the method of liger-kernel's fused linear cross-entropy, in PyTorch).

On a CUDA GPU with liger-kernel installed and `enable_liger_kernel` on, liger's Triton kernel does
the same thing faster; everywhere else (CPU included) the pure-PyTorch chunked version runs. Both
return the *sum* of token losses; the caller divides by the token count it wants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from tunelab.data.labels import IGNORE_INDEX
from tunelab.train.losses.logprobs import logit_transform, shift_labels, token_logps_from_hidden

Tensor = torch.Tensor
#: the chunk's logits are kept about as large as the hidden states themselves (liger's rule), within these bounds
MIN_CHUNK_TOKENS = 64
MAX_CHUNK_TOKENS = 4096


def chunk_size(tokens: int, hidden_size: int, vocab_size: int) -> int:
    """Tokens per chunk: a power of two near tokens / ceil(vocab / hidden), so one chunk of logits is
    about the size of the hidden states it comes from."""
    ideal = math.ceil(tokens / max(math.ceil(vocab_size / max(hidden_size, 1)), 1))
    return max(MIN_CHUNK_TOKENS, min(MAX_CHUNK_TOKENS, 1 << max(ideal - 1, 0).bit_length()))


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(transform(h_i · Wᵀ + b), y_i) with gradients computed chunk by chunk in forward."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                transform: Callable[[Tensor], Tensor] | None, chunk: int) -> Tensor:
        need_h, need_w = hidden.requires_grad, weight.requires_grad
        need_b = bias is not None and bias.requires_grad
        grad_h = torch.zeros_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        w = weight.detach()
        for start in range(0, targets.shape[0], chunk):
            h = hidden[start : start + chunk].detach().to(w.dtype)  # bf16 head, float32 hidden states (CPU autocast)
            y = targets[start : start + chunk]
            logits = torch.nn.functional.linear(h, w, None if bias is None else bias.detach()).float()
            with torch.enable_grad():
                logits.requires_grad_(True)
                shaped = transform(logits) if transform is not None else logits
                loss = torch.nn.functional.cross_entropy(shaped, y, ignore_index=IGNORE_INDEX, reduction="sum")
                (grad_logits,) = torch.autograd.grad(loss, logits) if (need_h or need_w or need_b) else (None,)
            total += loss.detach()
            if grad_logits is None:
                continue
            if need_h:
                grad_h[start : start + chunk] = (grad_logits.to(w.dtype) @ w).to(hidden.dtype)
            if need_w:
                grad_w.addmm_(grad_logits.t(), h.float())
            if need_b:
                grad_b += grad_logits.sum(0)
            del logits, shaped, grad_logits
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grad_h, grad_w, grad_b = ctx.saved_tensors
        scale = grad_output.float()
        out_h = None if grad_h is None else grad_h * scale.to(grad_h.dtype)
        out_w = None if grad_w is None else (grad_w * scale).to(ctx.weight_dtype)
        out_b = None if grad_b is None else (grad_b * scale).to(ctx.bias_dtype)
        return out_h, out_w, out_b, None, None, None


def chunked_linear_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, *, bias: Tensor | None = None,
                                 transform: Callable[[Tensor], Tensor] | None = None,
                                 chunk: int | None = None) -> Tensor:
    """Summed cross-entropy of `targets` [N] under logits `transform(hidden [N, H] @ weight.T + bias)`."""
    size = chunk or chunk_size(targets.shape[0], hidden.shape[-1], weight.shape[0])
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, bias, targets, transform, size)


def liger_linear_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, *, bias: Tensor | None = None,
                               softcap: float | None = None) -> Tensor:
    """The same sum through liger-kernel's Triton kernel (CUDA only)."""
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum", softcap=softcap)(
        weight, hidden, targets, bias)
    return loss[0] if isinstance(loss, tuple) else loss


def shifted_targets(hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Hidden states [N, H] of the positions that predict a label, and those labels [N].

    Position t predicts label t+1; positions whose next label is -100 (prompt, padding, the first
    token of a packed example) never reach the head at all.
    """
    next_labels, mask = shift_labels(labels)
    return hidden[:, :-1][mask], next_labels[mask]


def summed_lm_loss(hidden: Tensor, labels: Tensor, head: Any, model_config: Any, *, use_liger: bool = False) -> Tensor:
    """Sum of next-token cross-entropies of `labels` [B, T] from the last hidden states [B, T, H]."""
    if type(head) is not torch.nn.Linear:  # an adapted or wrapped head (LoRA on lm_head, modules_to_save):
        # the checkpointed per-chunk log-probs of the preference stages; the loss is their negated sum
        token_logps, _ = token_logps_from_hidden(hidden, head, labels, scale=logit_transform(model_config))
        return -token_logps.sum()
    states, targets = shifted_targets(hidden, labels)
    weight, bias = head.weight, head.bias
    softcap = getattr(model_config, "final_logit_softcapping", None)
    scaled = getattr(model_config, "logit_scale", None) or getattr(model_config, "logits_scaling", None)
    if use_liger and states.is_cuda and not scaled:
        return liger_linear_cross_entropy(states, weight, targets, bias=bias, softcap=softcap)
    needs_transform = softcap or scaled
    return chunked_linear_cross_entropy(states, weight, targets, bias=bias,
                                        transform=logit_transform(model_config) if needs_transform else None)

