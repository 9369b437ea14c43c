"""A scalar value head on a causal LM: the reward model of `stage: rm`, and PPO's value model.

The head is a linear layer from the last (post-norm) hidden state to one number, read at the last
non-padding token. It is saved apart from the LM as `value_head.safetensors` with the keys
`v_head.summary.weight` / `v_head.summary.bias`, the anchor's layout, so reward models trained with
LLaMA-Factory load here and ours load there, and the LM part stays a plain adapter or model folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("tunelab.model")

VALUE_HEAD_FILE = "value_head.safetensors"
PREFIX = "v_head."
ATTRIBUTE = "v_head"  # the head hangs on the trained model under this name, so the Trainer optimises it


class ValueHead(torch.nn.Module):
    """`summary`: hidden_size -> 1, kept in float32 (it is tiny and its output is the loss's input)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = torch.nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


def hidden_size_of(model: Any) -> int:
    config = model.config
    text = getattr(config, "text_config", None) or config
    return int(getattr(text, "hidden_size", None) or text.n_embd)


def attach_value_head(model: Any, head: ValueHead | None = None) -> ValueHead:
    """Put a (new or given) head on `model` as a trainable sub-module, on the model's device."""
    head = head if head is not None else ValueHead(hidden_size_of(model))
    device = next(model.parameters()).device
    head.to(device=device, dtype=torch.float32).requires_grad_(True)
    setattr(model, ATTRIBUTE, head)
    return head


def detach_value_head(model: Any) -> ValueHead | None:
    """Take the head off `model` (so `save_pretrained` writes a plain LM) and return it."""
    head = getattr(model, ATTRIBUTE, None) if ATTRIBUTE in getattr(model, "_modules", {}) else None
    if head is not None:
        delattr(model, ATTRIBUTE)
    return head


def value_head_state(head: ValueHead) -> dict[str, torch.Tensor]:
    return {PREFIX + k: v.detach().cpu().float().contiguous() for k, v in head.state_dict().items()}


def save_value_head(head: ValueHead, folder: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(folder) / VALUE_HEAD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(value_head_state(head), str(path), metadata={"format": "pt"})
    return path


def load_value_head(path: str | Path) -> ValueHead:
    """A head from `value_head.safetensors` (ours or the anchor's)."""
    from safetensors.torch import load_file

    weights = load_file(str(path))
    weight = weights[PREFIX + "summary.weight"]
    head = ValueHead(weight.shape[1])
    head.summary.weight.data.copy_(weight)
    if PREFIX + "summary.bias" in weights:
        head.summary.bias.data.copy_(weights[PREFIX + "summary.bias"])
    else:
        head.summary.bias.data.zero_()
    return head


def find_value_head(folders: Sequence[str | Path]) -> Path | None:
    """The first folder (in the order given) that holds a value head."""
    for folder in folders:
        path = Path(folder) / VALUE_HEAD_FILE
        if path.is_file():
            return path
    return None


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token (rows are right-padded)."""
    return attention_mask.long().sum(-1).clamp(min=1) - 1


def sequence_rewards(model: Any, head: ValueHead, batch: dict[str, Any]) -> torch.Tensor:
    """One reward per row: the head on the last hidden state at the row's last real token."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    # through `model` itself (DDP / LoRA act as in any step); logits for one position only
    hidden = model(**inputs, output_hidden_states=True, logits_to_keep=1, use_cache=False).hidden_states[-1]
    index = last_token_index(batch["attention_mask"])
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), index.to(hidden.device)]
    return head(last)
