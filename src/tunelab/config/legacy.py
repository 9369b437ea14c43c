"""Keys older anchor versions and older transformers accepted, mapped to today's key.

Seeds still pass them (`--evaluation_strategy no`, `--sft_packing`), so they keep working; each
renaming is reported once so nothing changes silently.
"""

from __future__ import annotations

RENAMED_KEYS: dict[str, str] = {
    "evaluation_strategy": "eval_strategy",
    "sft_packing": "packing",
    "warmup_ratio": "warmup_steps",  # transformers 5: a float below 1 in warmup_steps is a ratio
    "per_gpu_train_batch_size": "per_device_train_batch_size",
    "per_gpu_eval_batch_size": "per_device_eval_batch_size",
    "no_cuda": "use_cpu",
    "flash_attn_2": "flash_attn",
    "gradient_checkpointing": "activation_checkpointing",  # transformers 5.2x renamed it
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}

# Anchor features tunelab does not implement; setting one to a true / non-empty value is an error.
UNSUPPORTED_KEY_PREFIXES: dict[str, str] = {
    "galore": "GaLore optimizers are not supported; use LoRA or full fine-tuning",
    "use_galore": "GaLore optimizers are not supported; use LoRA or full fine-tuning",
    "apollo": "APOLLO optimizers are not supported; use LoRA or full fine-tuning",
    "use_apollo": "APOLLO optimizers are not supported; use LoRA or full fine-tuning",
    "badam": "BAdam is not supported; use LoRA or freeze tuning",
    "use_badam": "BAdam is not supported; use LoRA or freeze tuning",
    "use_swanlab": "SwanLab reporting is not built in; use report_to: tensorboard or wandb",
    "swanlab": "SwanLab reporting is not built in; use report_to: tensorboard or wandb",
}


def unsupported_reason(key: str) -> str | None:
    for prefix, reason in UNSUPPORTED_KEY_PREFIXES.items():
        if key == prefix or key.startswith(prefix + "_"):
            return reason
    return None


# Values older anchor versions accepted for a key, mapped to today's value (each mapping is logged).
# Keys: the config key; values: the old spelling (lowercase text, or a YAML bool) -> today's value.
RENAMED_VALUES: dict[str, dict[object, object]] = {
    "export_device": {"cuda": "auto", "gpu": "auto"},  # the anchor's older choices were cpu / cuda
    # before the anchor's attention choices, flash_attn was a bool (true = flash-attention 2); then `off` meant
    # no fused attention (YAML reads a bare `off` as false), today's `disabled`
    "flash_attn": {True: "fa2", False: "disabled", "true": "fa2", "false": "disabled", "off": "disabled",
                   "none": "disabled"},
}


def renamed_value(key: str, value: object) -> tuple[object, bool]:
    """`value` mapped to today's spelling for `key`, and whether it was an old one."""
    table = RENAMED_VALUES.get(key)
    if not table:
        return value, False
    lookup = value.strip().lower() if isinstance(value, str) else value
    if isinstance(lookup, bool) or isinstance(lookup, str):
        if lookup in table and table[lookup] != value:
            return table[lookup], True
    return value, False
