"""The facts a bug report needs: versions of tunelab's libraries and the devices, as markdown."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

CORE_PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "safetensors", "tokenizers", "pyyaml")
OPTIONAL_PACKAGES = (
    "bitsandbytes", "liger-kernel", "flash-attn", "deepspeed", "vllm", "gradio", "fastapi", "uvicorn",
    "sse-starlette", "openai", "matplotlib", "tensorboard", "wandb", "mlflow", "rouge-score", "nltk", "lm-eval",
    "modelscope", "unsloth",
)


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_lines() -> list[str]:
    """CUDA GPUs with name and memory, or the CPU when there is none."""
    try:
        import torch
    except ImportError:
        return ["torch not installed"]
    lines = []
    if torch.cuda.is_available():
        lines.append(f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)")
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            lines.append(f"GPU {index}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        lines.append("no CUDA GPU")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        lines.append("Apple MPS available")
    import os

    lines.append(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    return lines


def environment_report() -> str:
    from tunelab import __version__

    lines = [
        f"- tunelab: {__version__}",
        f"- python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"- platform: {platform.platform()}",
    ]
    lines += [f"- {name}: {package_version(name)}" for name in CORE_PACKAGES]
    lines.append("- optional:")
    lines += [f"  - {name}: {package_version(name)}" for name in OPTIONAL_PACKAGES]
    lines.append("- devices:")
    lines += [f"  - {line}" for line in device_lines()]
    return "\n".join(lines)
