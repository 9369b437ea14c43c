"""`lora_target` checked against the model's layers before any weight loads: the architecture is built
from config.json on torch's meta device (no memory, no weights), so a module name of another family
(seed 003's `c_attn`, Qwen 1's, on a Qwen1.5 model) is refused by `tunelab check` with the names there are.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.config.finetuning_args import FinetuningArguments
from tunelab.config.model_args import ModelArguments


def _meta_model(folder: Path, args: ModelArguments) -> object | None:
    """The architecture without weights, or None when it cannot be built here (its own code, a new type)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunelab.model.legacy.convert import FAMILY_KEY

    config_dict = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    # a folder tunelab converted names tunelab's own (registered) class in its auto_map: no remote code runs
    if config_dict.get("auto_map") and not args.trust_remote_code and FAMILY_KEY not in config_dict:
        return None
    try:
        import torch

        config = AutoConfig.from_pretrained(folder, trust_remote_code=args.trust_remote_code)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=args.trust_remote_code)
    except Exception:  # noqa: BLE001 - any failure here is reported by the real load, with its own message
        return None


def lora_target_problems(args: ModelArguments, ft: FinetuningArguments, folder: Path) -> list[str]:
    """lora_target names that are not linear layers of the model in `folder` (a model folder that loads)."""
    if ft.finetuning_type != "lora":
        return []
    targets = ft.lora_target_modules()
    if targets == ["all"]:
        return []
    model = _meta_model(folder, args)
    if model is None:
        return []
    from tunelab.model.legacy import family_of_model, native_lora_targets
    from tunelab.model.tuning import linear_module_names

    targets = native_lora_targets(targets, family_of_model(model))
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    if not missing:
        return []
    return [f"lora_target: {', '.join(missing)} is not a linear layer of this model; its linear layers are "
            f"{', '.join(available)} (or use lora_target: all)."]
