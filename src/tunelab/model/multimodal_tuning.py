"""What trains in a multimodal model: the freeze keys, for full, freeze and LoRA tuning alike.

`freeze_vision_tower` (default true), `freeze_multi_modal_projector` (default true) and
`freeze_language_model` (default false) keep the anchor's meaning: a frozen part gets no gradient under
full and freeze tuning, and no LoRA adapter under LoRA (so by default LoRA adapts the language model
only, as LLaMA-Factory's `forbidden_modules` do). The parts are named by the family record
(`model/multimodal.py`).
"""

from __future__ import annotations

import logging
from typing import Any

from tunelab.config.finetuning_args import FinetuningArguments
from tunelab.errors import UserError
from tunelab.model.multimodal import MultimodalFamily, multimodal_family

logger = logging.getLogger("tunelab.model")


def multimodal_family_of(model: Any) -> MultimodalFamily | None:
    config = getattr(model, "config", None)
    return multimodal_family(getattr(config, "model_type", None))


def trainable_parts(ft: FinetuningArguments) -> set[str]:
    """The parts the freeze keys leave trainable ('tower', 'projector', 'language'; 'other' goes with the
    language model: it is what no part names, such as a tied output head)."""
    parts = set()
    if not ft.freeze_vision_tower:
        parts.add("tower")
    if not ft.freeze_multi_modal_projector:
        parts.add("projector")
    if not ft.freeze_language_model:
        parts.update(("language", "other"))
    if not parts:
        raise UserError("freeze_vision_tower, freeze_multi_modal_projector and freeze_language_model are all true: "
                        "nothing would train; set one of them to false.")
    return parts


def part_of(family: MultimodalFamily, parameter_name: str) -> str:
    """The part a parameter (or module) name belongs to, with a PEFT wrapper's prefix removed."""
    name = parameter_name
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return family.component_of(name)


def freeze_parts(model: Any, family: MultimodalFamily, ft: FinetuningArguments) -> None:
    """Full tuning: parameters of frozen parts get no gradient; the rest keep theirs."""
    parts = trainable_parts(ft)
    for name, param in model.named_parameters():
        if part_of(family, name) not in parts:
            param.requires_grad_(False)
    log_parts(family, parts)


def log_parts(family: MultimodalFamily, parts: set[str]) -> None:
    named = {"tower": "vision / audio tower", "projector": "projector", "language": "language model"}
    trained = [label for key, label in named.items() if key in parts]
    frozen = [label for key, label in named.items() if key not in parts]
    logger.info("%s: training the %s; frozen: %s (freeze_vision_tower / freeze_multi_modal_projector / "
                "freeze_language_model)", family.name, ", ".join(trained), ", ".join(frozen) or "nothing")


def lora_module_names(model: Any, family: MultimodalFamily, ft: FinetuningArguments, short_names: list[str]) -> list[str]:
    """Full names of the linear layers LoRA adapts: those named by `lora_target` inside trainable parts."""
    import torch

    parts = trainable_parts(ft)
    head = model.get_output_embeddings()
    names = [full for full, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module is not head and full.split(".")[-1] in short_names
             and part_of(family, full) in parts]
    if not names:
        raise UserError(f"lora_target {','.join(short_names)}: no such linear layer in the parts that train "
                        f"({', '.join(sorted(parts - {'other'}))}); check lora_target and the freeze_* keys.")
    log_parts(family, parts)
    return names
