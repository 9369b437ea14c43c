"""Activation memory: when activation recomputation ("gradient checkpointing") is turned on if the user did not say.

(Not to be confused with saved checkpoints, `train/run/resume.py`: here nothing is written to disk;
the activations of a layer are dropped after its forward pass and recomputed for backward.)

Recomputation costs about a third more compute per step (every layer's forward runs twice), so it
should be on only when the activations would not fit. The anchor turns it on always; tunelab
estimates the activation memory of one step and turns it on when that would take more than half of
the memory left once the weights, gradients and optimizer states are in place:

    activations ≈ per_device_train_batch_size × cutoff_len × layers × (8·hidden + 2·kv + 4·intermediate) × dtype bytes

(the tensors a llama-style decoder layer keeps for backward: norm inputs and outputs, q / k / v,
the attention output, the residual, and the gate, up, activation and product of the MLP; attention
scores are not kept with SDPA / flash-attention). `cutoff_len` is an upper bound of a row's length,
so the estimate errs on the side of memory. An explicit `activation_checkpointing` (or the anchor's
`gradient_checkpointing` / `disable_gradient_checkpointing`) always wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("tunelab.train")

#: checkpointing goes on when activations would take more than this share of the free memory
SHARE_OF_FREE_MEMORY = 0.5
#: bytes per trainable parameter for its gradient and AdamW's two float32 moments
OPTIMIZER_BYTES_PER_TRAINABLE = 12


@dataclass(frozen=True)
class CheckpointingDecision:
    enabled: bool
    activation_bytes: int
    free_bytes: int

    def reason(self) -> str:
        verdict = "more" if self.enabled else "no more"
        return (f"one step's activations need about {self.activation_bytes / 2**30:.2f} GiB, {verdict} than "
                f"{SHARE_OF_FREE_MEMORY:.0%} of the {self.free_bytes / 2**30:.2f} GiB free after weights and "
                "optimizer states")


def activation_bytes_per_token(model_config: Any, dtype_bytes: int) -> int:
    """Bytes one token's activations take across all decoder layers (see the module docstring)."""
    text = getattr(model_config, "text_config", None) or model_config
    hidden = int(text.hidden_size)
    intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    heads = int(getattr(text, "num_attention_heads", 1))
    head_dim = int(getattr(text, "head_dim", None) or hidden // max(heads, 1))
    kv = int(getattr(text, "num_key_value_heads", None) or heads) * head_dim
    return int(text.num_hidden_layers) * (8 * hidden + 2 * kv + 4 * intermediate) * dtype_bytes


def decide(tokens_per_step: int, model_config: Any, dtype_bytes: int, free_bytes: int) -> CheckpointingDecision:
    needed = tokens_per_step * activation_bytes_per_token(model_config, dtype_bytes)
    return CheckpointingDecision(needed > SHARE_OF_FREE_MEMORY * free_bytes, needed, free_bytes)


def free_memory_bytes(device_is_cuda: bool) -> int:
    """Free memory where the activations will live: the current GPU, or the host's available RAM."""
    if device_is_cuda:
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def choose_checkpointing(model: Any, *, batch_size: int, cutoff_len: int, full_weights_train: bool,
                         device_is_cuda: bool) -> CheckpointingDecision:
    """Apply the rule to a loaded model; with CUDA, weights still on the host count as GPU memory to come."""
    params = sum(p.numel() for p in model.parameters())
    optimizer = params * OPTIMIZER_BYTES_PER_TRAINABLE if full_weights_train else 0
    weights_to_come = 0
    if device_is_cuda and model.device.type != "cuda":  # the Trainer moves the weights onto the GPU later
        weights_to_come = sum(p.numel() * p.element_size() for p in model.parameters())
    free = max(free_memory_bytes(device_is_cuda) - optimizer - weights_to_come, 0)
    return decide(batch_size * cutoff_len, model.config, model.dtype.itemsize, free)
