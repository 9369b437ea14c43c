"""On-the-fly bitsandbytes quantization for QLoRA: a CUDA GPU and the package, or a clear refusal."""

from __future__ import annotations

from typing import Any

from tunelab.config.model_args import ModelArguments
from tunelab.errors import MissingPackageError, UserError


def quantization_config(args: ModelArguments, compute_dtype: Any) -> Any | None:
    """A `BitsAndBytesConfig` for `quantization_bit` 4 / 8, or None when no quantization is asked."""
    if args.quantization_bit is None:
        return None
    import importlib.util

    import torch

    if args.quantization_method not in ("bnb", "bitsandbytes"):
        raise UserError(f"quantization_method: {args.quantization_method} is not supported for training; use bnb.")
    if not torch.cuda.is_available():
        raise UserError(
            f"quantization_bit={args.quantization_bit} (QLoRA) needs a CUDA GPU and none was found; "
            "drop quantization_bit to train LoRA in full precision on this machine."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingPackageError("bitsandbytes", f"quantization_bit={args.quantization_bit} (QLoRA)", extra="gpu")
    from transformers import BitsAndBytesConfig

    if args.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_use_double_quant=args.double_quantization,
        bnb_4bit_quant_type=args.quantization_type,
        bnb_4bit_quant_storage=compute_dtype,
    )
