"""Values that follow from other values. Each one is recorded with its reason and logged once,
so the user can see every value the program chose for them."""

from __future__ import annotations

import importlib.util

from tunelab.config.resolved import Config
from tunelab.config.stages import get_stage_spec


def _set(config: Config, group: str, key: str, value: object, why: str) -> None:
    if group == "training":
        config.training_values[key] = value
    else:
        setattr(config.group(group), key, value)
    config.derived[key] = (value, why)


def derive_values(config: Config) -> None:
    data, ft, model = config.data, config.finetuning, config.model
    spec = get_stage_spec(ft.stage)
    if ft.finetuning_type == "lora" and ft.lora_alpha is None:
        _set(config, "finetuning", "lora_alpha", ft.lora_rank * 2, "default: lora_rank * 2")
    if data.template is None or data.template == "":
        _set(config, "data", "template", "auto", "no template given: the tokenizer's own chat template is used")
    if data.neat_packing and data.packing is None:
        _set(config, "data", "packing", True, "neat_packing implies packing")
    elif data.packing is None:
        _set(config, "data", "packing", spec.packs_by_default, f"default for stage {ft.stage}")
    if data.padding_free is None:
        if spec.padding_free and not data.packing:
            _set(config, "data", "padding_free", True,
                 f"default for stage {ft.stage}: no compute on padding, same examples per step")
        else:
            data.padding_free = False
    if model.use_unsloth and importlib.util.find_spec("unsloth") is None:
        config.derived.setdefault(
            "use_unsloth",
            (True, "unsloth is not installed: tunelab's own kernels are used instead (same results)"),
        )
