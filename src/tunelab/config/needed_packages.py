"""Which optional packages a config needs on this machine, and the message for each one missing.

One table for every feature, so a missing package is reported before anything loads with the
same words and a real install command (tunelab.optional_packages), not by a library mid-run.
"""

from __future__ import annotations

from tunelab.config.hardware import bnb_optimizer, cuda_available, quantization_bits
from tunelab.config.resolved import Config
from tunelab.optional_packages import is_installed, missing_message


def _report_to(value: object) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(item).strip().lower() for item in items if str(item).strip()]


def needed_packages(config: Config) -> list[tuple[str, str]]:
    """(package, the key that needs it) for every optional package this config uses here."""
    model, values, ft = config.model, config.training_values, config.finetuning
    needed: list[tuple[str, str]] = []
    if values.get("deepspeed"):
        needed.append(("deepspeed", "deepspeed"))
    cuda = cuda_available()  # without CUDA these are refused by config/hardware.py; installing would not help
    if cuda:
        for key, value in quantization_bits(config).items():
            needed.append(("bitsandbytes", f"{key}: {value} (QLoRA)"))
        optim = bnb_optimizer(values)
        if optim:
            needed.append(("bitsandbytes", f"optim: {optim}"))
        if model.enable_liger_kernel:
            needed.append(("liger-kernel", "enable_liger_kernel: true"))
        if model.flash_attn == "fa2":
            needed.append(("flash-attn", "flash_attn: fa2"))
    if model.infer_backend == "vllm":
        needed.append(("vllm", "infer_backend: vllm"))
    if config.export.export_quantization_bit is not None:
        needed += [("gptqmodel", "export_quantization_bit"), ("optimum", "export_quantization_bit")]
    if ft.plot_loss:
        needed.append(("matplotlib", "plot_loss: true"))
    for reporter in _report_to(values.get("report_to")):
        if reporter in ("tensorboard", "wandb", "mlflow"):
            needed.append((reporter, f"report_to: {reporter}"))
    return needed


def package_problems(config: Config) -> list[str]:
    """One line per optional package the config needs that is not installed."""
    return [missing_message(package, feature) for package, feature in needed_packages(config)
            if not is_installed(package)]
