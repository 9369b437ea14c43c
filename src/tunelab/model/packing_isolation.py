"""Whether a model keeps the examples of a packed row apart, decided before any batch is built.

Packed and padding-free rows (`data/batching.py`) mark example boundaries with restarting position
ids; transformers turns them into per-layer attention masks. That isolates examples for softmax
attention (full, sliding-window, MoE feed-forwards), but not for layers that carry a state along the
sequence: the linear attention of Qwen3.5 / Qwen3-Next (gated DeltaNet), Mamba and short
convolutions (Falcon-H1, LFM2). Their torch kernels take no sequence boundaries, so the second
example of a row sees the first one's state (a tiny random Qwen3.5: 2.4e-2 on the logits). For those
tunelab pads instead, and says so.

The decision, in order:

1. `PROVEN`: architectures whose packed losses and gradients equal the examples alone, per example,
   in `tests/train/test_packing_isolation.py` (sdpa and eager, float32, atol 1e-5; tunelab's own classes
   in `tests/model/legacy/`);
2. `CARRIES_STATE`: architectures known to leak, with the reason;
3. anything else: a probe at start-up, one forward of two short sequences packed and alone on the
   real model (milliseconds on a GPU); packing is used only if they agree.

Every outcome but (1) is logged once, naming the architecture and the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("tunelab.model")

#: model_type -> proved to isolate packed examples by tests/train/test_packing_isolation.py
PROVEN: frozenset[str] = frozenset({
    "llama", "mistral", "ministral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "gemma3_text", "phi", "phi3", "glm", "glm4", "deepseek_v3", "olmo2", "granite", "cohere", "starcoder2",
    "smollm3", "exaone4",
    # tunelab's own classes of remote-code families (model/legacy/), proved in tests/model/legacy/test_<family>.py
    "tunelab_baichuan2_alibi", "tunelab_telechat2", "tunelab_yuan2",
})

_LINEAR_ATTENTION = ("its gated DeltaNet (linear attention) layers carry a state along the row, and their torch "
                     "kernels take no sequence boundaries")
#: model_type -> why its packed rows would leak from one example into the next
CARRIES_STATE: dict[str, str] = {
    "qwen3_5": _LINEAR_ATTENTION,
    "qwen3_5_text": _LINEAR_ATTENTION,
    "qwen3_5_moe": _LINEAR_ATTENTION,
    "qwen3_5_moe_text": _LINEAR_ATTENTION,
    "qwen3_next": _LINEAR_ATTENTION,
    "falcon_h1": "its Mamba layers carry a state along the row",
    "lfm2": "its short-convolution layers mix each token with the tokens before it, across example boundaries",
    "granitemoehybrid": "its Mamba layers carry a state along the row",
    "jamba": "its Mamba layers carry a state along the row",
    "mamba": "it is a state-space model: the state runs along the whole row",
    "mamba2": "it is a state-space model: the state runs along the whole row",
}


@dataclass(frozen=True)
class Isolation:
    """Whether packed rows are safe for this model, and why (the log line when they are not)."""

    isolates: bool
    reason: str


def probe_isolation(model: Any, *, lengths: tuple[int, int] = (7, 5)) -> tuple[bool, float]:
    """(agree, largest logit difference): the second of two random sequences, packed after the first in
    one row, against the same sequence alone.

    Tolerance, relative to the largest logit: 1e-5 in float32 (isolating architectures differ by
    < 1e-6 there; a tiny random LFM2 whose convolutions leak, by 6.6e-5), 4 ulps in half precision
    (3 % in bfloat16: rounding in rows of other lengths stays below it, a leak in a trained model is
    of the order of the logits themselves)."""
    import torch

    vocab = int(getattr(model.config, "vocab_size", 0) or model.get_input_embeddings().num_embeddings)
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.randint(min(3, vocab - 1), vocab, (n,), generator=generator) for n in lengths)
    device = next(model.parameters()).device
    packed_ids = torch.cat([first, second])[None].to(device)
    positions = torch.cat([torch.arange(lengths[0]), torch.arange(lengths[1])])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(input_ids=packed_ids, position_ids=positions, use_cache=False).logits[0, lengths[0]:]
            alone = model(input_ids=second[None].to(device), use_cache=False).logits[0]
    finally:
        model.train(was_training)
    packed, alone = packed.float(), alone.float()
    difference = float((packed - alone).abs().max())
    dtype = next(model.parameters()).dtype
    relative = 1e-5 if dtype == torch.float32 else 4 * torch.finfo(dtype).eps
    return difference <= relative * max(1.0, float(alone.abs().max())), difference


def packing_isolation(model: Any) -> Isolation:
    """Whether this model keeps packed examples apart (table, then probe); logged unless proven."""
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", "") or "")
    if model_type in PROVEN:
        return Isolation(True, f"{model_type}: proved by tests/train/test_packing_isolation.py")
    if model_type in CARRIES_STATE:
        isolation = Isolation(False, f"{model_type}: {CARRIES_STATE[model_type]}")
    else:
        try:
            agree, difference = probe_isolation(model)
        except Exception as error:  # a model whose forward rejects the probe's inputs cannot be trusted with packing
            isolation = Isolation(False, f"{model_type or type(model).__name__}: the start-up probe could not run "
                                         f"({type(error).__name__}: {error})")
        else:
            name = model_type or type(model).__name__
            isolation = (Isolation(True, f"{name}: not in tunelab's table; the start-up probe found packed and lone "
                                         f"examples equal (largest logit difference {difference:.1e})")
                         if agree else
                         Isolation(False, f"{name}: the start-up probe found a packed example differing from the "
                                          f"same example alone by {difference:.2e} in its logits"))
    if isolation.isolates:
        logger.info("padding-free / packed rows: %s", isolation.reason)
    else:
        logger.warning("padding-free / packed rows are not used: %s; each example gets a padded row of its own "
                       "(same results, more padding)", isolation.reason)
    return isolation
