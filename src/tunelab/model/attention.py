"""Chooses the attention implementation from `flash_attn`, failing clearly when the asked-for one is missing."""

from __future__ import annotations

import importlib.util
import logging

from tunelab.errors import MissingPackageError, UserError

logger = logging.getLogger("tunelab.model")

_FIXED = {"disabled": "eager", "eager": "eager", "sdpa": "sdpa"}


def attention_implementation(flash_attn: str, cuda_available: bool) -> str:
    """Map the anchor's `flash_attn` values onto transformers' `attn_implementation`."""
    if flash_attn in _FIXED:
        return _FIXED[flash_attn]
    has_fa2 = importlib.util.find_spec("flash_attn") is not None
    if flash_attn == "fa2":
        if not cuda_available:
            raise UserError("flash_attn: fa2 needs a CUDA GPU; use flash_attn: sdpa (or auto) on this machine.")
        if not has_fa2:
            raise MissingPackageError("flash-attn", "flash_attn: fa2")
        return "flash_attention_2"
    if flash_attn == "fa3":
        if not cuda_available:
            raise UserError("flash_attn: fa3 needs a Hopper CUDA GPU; use flash_attn: sdpa (or auto) on this machine.")
        if importlib.util.find_spec("flash_attn_interface") is None:
            raise MissingPackageError("flash-attn (v3, flash_attn_interface)", "flash_attn: fa3")
        return "flash_attention_3"
    # auto: flash-attention 2 when it can run, otherwise PyTorch's scaled-dot-product attention
    chosen = "flash_attention_2" if (cuda_available and has_fa2) else "sdpa"
    logger.info("flash_attn = auto: using %s attention", chosen)
    return chosen
