"""The optional packages tunelab can use, with the one command that installs each.

Every "needs the package X" message takes its install command from here, so a message never names
an extra that pyproject.toml does not define (tests/config/test_optional_packages.py checks the two
agree) and every feature's missing package is reported the same way, before any weights load.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionalPackage:
    """One optional package: its pip name, the module it installs and tunelab's extra that pulls it in."""

    pip: str
    module: str
    extra: str | None = None
    command: str | None = None  # an install command other than `pip install "tunelab[<extra>]"`

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def install_command(self) -> str:
        if self.command:
            return self.command
        if self.extra:
            return f'pip install "tunelab[{self.extra}]"'
        return f"pip install {self.pip}"


PACKAGES: tuple[OptionalPackage, ...] = (
    OptionalPackage("deepspeed", "deepspeed", "deepspeed"),
    OptionalPackage("bitsandbytes", "bitsandbytes", "bitsandbytes"),
    OptionalPackage("liger-kernel", "liger_kernel", "liger"),
    OptionalPackage("vllm", "vllm", "vllm"),
    # flash-attn compiles against the local CUDA toolkit, so no extra can pin it
    OptionalPackage("flash-attn", "flash_attn", command="pip install flash-attn --no-build-isolation"),
    OptionalPackage("gptqmodel", "gptqmodel", "gptq"),
    OptionalPackage("optimum", "optimum", "gptq"),
    OptionalPackage("gguf", "gguf", "export"),
    OptionalPackage("matplotlib", "matplotlib", "metrics"),
    OptionalPackage("tensorboard", "tensorboard", "metrics"),
    OptionalPackage("rouge-score", "rouge_score", "metrics"),
    OptionalPackage("nltk", "nltk", "metrics"),
    OptionalPackage("wandb", "wandb"),
    OptionalPackage("mlflow", "mlflow"),
    OptionalPackage("gradio", "gradio", "webui"),
    OptionalPackage("fastapi", "fastapi", "api"),
    OptionalPackage("uvicorn", "uvicorn", "api"),
    OptionalPackage("sse-starlette", "sse_starlette", "api"),
    OptionalPackage("llguidance", "llguidance", "api"),  # structured output (response_format, forced tool calls)
    OptionalPackage("lm-eval", "lm_eval", "eval-harness"),
    OptionalPackage("modelscope", "modelscope"),
    OptionalPackage("av", "av"),  # video files (frames given as pictures need nothing)
    OptionalPackage("soundfile", "soundfile"),  # audio other than WAV
    # torchvision must match torch's build exactly, so no extra can pin it
    OptionalPackage("torchvision", "torchvision", command="pip install torchvision (the release built for your torch)"),
)
BY_NAME: dict[str, OptionalPackage] = {p.pip: p for p in PACKAGES} | {p.module: p for p in PACKAGES}


#: pyproject.toml's optional-dependencies, by name (the test suite checks the two lists are equal)
EXTRAS = frozenset({"dev", "metrics", "api", "webui", "export", "gptq", "eval-harness", "deepspeed", "bitsandbytes",
                    "liger", "vllm", "gpu"})


def install_command(package: str, extra: str | None = None) -> str:
    """The command that installs `package` (pip or module name); `extra` is the caller's guess, used
    only for packages this registry does not know and only when pyproject.toml defines it."""
    known = BY_NAME.get(package)
    if known is not None:
        return known.install_command()
    if extra and extra in EXTRAS:
        return f'pip install "tunelab[{extra}]"'
    return f"pip install {package}"


def missing_message(package: str, feature: str) -> str:
    """`feature needs the package ...` with the install command: one line of a problem list."""
    return f"{feature} needs the package '{package}', which is not installed. Install it with: {install_command(package)}"


def is_installed(package: str) -> bool:
    known = BY_NAME.get(package)
    return known.installed() if known else importlib.util.find_spec(package) is not None
