"""What this machine can run: mixed precision, QLoRA, bitsandbytes optimizers, flash-attention.

Checked before any weights load, by `tunelab check` and before training, so a config written for a
GPU machine fails on a laptop with the key and the fix instead of a library's text half-way through.

bf16 without a GPU: transformers refuses it unless `use_cpu` is set ("Your setup doesn't support
bf16/gpu"). Where torch reports native bf16 on the CPU (oneDNN's check: AVX512-BF16 or AMX), tunelab
sets `use_cpu: true` (logged) and the Trainer runs bf16 autocast on the CPU; elsewhere bf16 is refused.
"""

from __future__ import annotations

import logging
from typing import Any

from tunelab.config.resolved import Config
from tunelab.errors import ProblemList

logger = logging.getLogger("tunelab.config")

_BNB_MARKS = ("bnb", "8bit")  # adamw_bnb_8bit, adamw_8bit, paged_adamw_32bit, ...


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_bf16_available() -> bool:
    """A GPU (CUDA, or another accelerator transformers knows) that computes in bf16."""
    from transformers.utils import is_torch_bf16_gpu_available

    return bool(is_torch_bf16_gpu_available())


def cpu_supports_bf16() -> bool:
    """torch's own answer: oneDNN has native bf16 kernels for this CPU (AVX512-BF16 / AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _wants_bf16(values: dict[str, Any]) -> bool:
    return bool(values.get("bf16") or values.get("bf16_full_eval"))


def bnb_optimizer(values: dict[str, Any]) -> str | None:
    optim = str(values.get("optim") or "")
    return optim if any(mark in optim for mark in _BNB_MARKS) or optim.startswith("paged_") else None


def quantization_bits(config: Config) -> dict[str, int]:
    """The on-the-fly (bitsandbytes) quantization keys the config sets: the model's, the reference's, the reward model's."""
    bits = {"quantization_bit": config.model.quantization_bit,
            "ref_model_quantization_bit": config.finetuning.ref_model_quantization_bit,
            "reward_model_quantization_bit": config.finetuning.reward_model_quantization_bit}
    return {key: value for key, value in bits.items() if value is not None}


def precision_problems(values: dict[str, Any]) -> list[str]:
    """fp16 / bf16 that this machine cannot run, each with the fix."""
    problems: list[str] = []
    cuda = cuda_available()
    for key in ("fp16", "fp16_full_eval"):
        if values.get(key) and not cuda:
            alternative = ("bf16: true runs on this CPU" if cpu_supports_bf16()
                           else "this CPU has no native bf16 either, so train in float32")
            problems.append(f"{key}: true needs a CUDA GPU and none was found; on this machine set {key}: false "
                            f"({alternative}).")
    if _wants_bf16(values) and not gpu_bf16_available():
        key = "bf16" if values.get("bf16") else "bf16_full_eval"
        if cuda:
            problems.append(f"{key}: true needs a GPU with bf16 (Ampere or newer) and this CUDA GPU has none; "
                            "use fp16: true instead.")
        elif not cpu_supports_bf16():
            problems.append(f"{key}: true: there is no GPU and this CPU has no native bf16 (AVX512-BF16 or AMX), "
                            f"so torch cannot run bf16 here; set {key}: false (float32) on this machine.")
    return problems


def hardware_problems(config: Config) -> list[str]:
    """Everything in `config` that needs hardware this machine lacks."""
    problems = precision_problems(config.training_values)
    if cuda_available():
        return problems
    model = config.model
    for key, bits in quantization_bits(config).items():
        problems.append(f"{key}: {bits} (QLoRA, bitsandbytes) needs a CUDA GPU and none was found; drop {key} to "
                        "use the model in full precision on this machine.")
    optim = bnb_optimizer(config.training_values)
    if optim:
        problems.append(f"optim: {optim} (bitsandbytes) needs a CUDA GPU and none was found; use optim: adamw_torch.")
    if config.export.export_quantization_bit is not None:
        problems.append(f"export_quantization_bit: {config.export.export_quantization_bit} (GPTQ) needs a CUDA GPU and "
                        "none was found; export without export_quantization_bit here and quantize on a GPU machine, "
                        "or write a GGUF (tunelab export --gguf f16).")
    if model.flash_attn in ("fa2", "fa3"):
        problems.append(f"flash_attn: {model.flash_attn} needs a CUDA GPU and none was found; use flash_attn: auto "
                        "(PyTorch's sdpa attention) on this machine.")
    return problems


def cpu_precision_values(values: dict[str, Any]) -> dict[str, Any]:
    """The TrainingArguments values with what transformers needs to run this mixed precision here.

    bf16 with no bf16 GPU but a CPU with native bf16: `use_cpu: true` (logged), without which
    transformers refuses bf16. fp16 without CUDA, or bf16 nowhere supported: one `ProblemList`.
    """
    problems = precision_problems(values)
    if problems:
        raise ProblemList(problems)
    out = dict(values)
    if _wants_bf16(values) and not gpu_bf16_available() and not values.get("use_cpu"):
        out["use_cpu"] = True
        logger.info("use_cpu = True (bf16 with no GPU: this CPU has native bf16, so training runs bf16 autocast "
                    "on the CPU)")
    return out
