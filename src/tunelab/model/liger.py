"""liger-kernel: whether it is used for a run, and applying its fused RMSNorm / RoPE / SwiGLU kernels.

liger's kernels are Triton GPU kernels, so they are used on a CUDA GPU only. `enable_liger_kernel`
left unset means "on when it can run" (CUDA present and liger-kernel installed); set to true it
is required, so a missing package is an error rather than a silent slow run; on a machine without
CUDA an explicit true is logged and the pure-PyTorch equivalents run instead (same results).
The loss itself is not patched into the model's forward: tunelab's trainer computes it (see
`train/losses/lm.py`, which calls liger's fused linear cross-entropy when this resolves to on).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from tunelab.errors import MissingPackageError

logger = logging.getLogger("tunelab.model")


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def resolve_liger(requested: bool | None, *, cuda_available: bool, installed: bool) -> bool:
    """The effective `enable_liger_kernel` for this run (logged with its reason)."""
    if requested is False:
        return False
    if not cuda_available:
        if requested:
            logger.warning("enable_liger_kernel: true has no effect without a CUDA GPU (liger's kernels are Triton "
                           "GPU kernels); the PyTorch equivalents run instead, with the same results")
        return False
    if not installed:
        if requested:
            raise MissingPackageError("liger-kernel", "enable_liger_kernel: true", extra="gpu")
        logger.info("enable_liger_kernel = false (default): liger-kernel is not installed; "
                    "`pip install liger-kernel` for fused RMSNorm / RoPE / SwiGLU / loss kernels on this GPU")
        return False
    if requested is None:
        logger.info("enable_liger_kernel = true (default on a CUDA GPU with liger-kernel installed)")
    return True


def apply_liger_kernels(model: Any) -> bool:
    """Swap the model's RMSNorm, RoPE and SwiGLU for liger's kernels; False when its family has none."""
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    model_type = getattr(model.config, "model_type", "?")
    try:
        _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True,
                                        cross_entropy=False, fused_linear_cross_entropy=False)
    except (TypeError, ValueError, AttributeError) as error:
        logger.warning("liger-kernel has no kernels for model type %s (%s); it runs without them", model_type, error)
        return False
    logger.info("liger-kernel: fused RMSNorm, RoPE and SwiGLU kernels applied to %s", model_type)
    return True
