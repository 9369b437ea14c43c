"""The three tuning methods behind `finetuning_type`: full, freeze and LoRA (with DoRA, rsLoRA, PiSSA).

Each method is one function with the same shape (model + settings → model ready to train) in a
registry, so adding a method is adding one function.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from tunelab.config.finetuning_args import FinetuningArguments
from tunelab.config.model_args import ModelArguments
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.model")

_LAYER_INDEX = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


def _cast_trainable_to_fp32(model: Any) -> None:
    """Trainable weights stay in float32 so mixed-precision optimiser steps do not lose updates."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.to(torch.float32)


def output_layer_names(model: Any) -> set[str]:
    head = model.get_output_embeddings()
    return {name for name, module in model.named_modules() if module is head} if head is not None else set()


def linear_module_names(model: Any) -> list[str]:
    """Short names of every linear layer except the output head (what `lora_target: all` means)."""
    import torch

    heads = output_layer_names(model)
    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and full_name not in heads:
            names.add(full_name.split(".")[-1])
    return sorted(names)


def apply_full(model: Any, ft: FinetuningArguments, margs: ModelArguments, is_trainable: bool) -> Any:
    from tunelab.model.multimodal_tuning import freeze_parts, multimodal_family_of

    for param in model.parameters():
        param.requires_grad_(is_trainable)
    family = multimodal_family_of(model)
    if is_trainable and family is not None:
        freeze_parts(model, family, ft)
    if is_trainable:
        _cast_trainable_to_fp32(model)
    return model


def freeze_trainable_layer_ids(num_layers: int, n: int) -> list[int]:
    """Positive n: the last n layers; negative n: the first -n layers."""
    if n == 0 or abs(n) > num_layers:
        raise UserError(
            f"freeze_trainable_layers={n} but the model has {num_layers} layers; use 1..{num_layers} (last layers) "
            f"or -1..-{num_layers} (first layers)."
        )
    return list(range(num_layers - n, num_layers)) if n > 0 else list(range(-n))


def apply_freeze(model: Any, ft: FinetuningArguments, margs: ModelArguments, is_trainable: bool) -> Any:
    """The last (or first) layers of the language model train; a multimodal model's tower and projector
    train as the freeze_* keys say (model/multimodal_tuning.py)."""
    from tunelab.model.multimodal_tuning import log_parts, multimodal_family_of, part_of, trainable_parts

    family = multimodal_family_of(model)
    parts = trainable_parts(ft) if family is not None else {"language", "other"}
    config = model.config.get_text_config() if family is not None else model.config
    num_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
    if not num_layers:
        raise UserError("finetuning_type: freeze needs a model whose config has num_hidden_layers.")
    layer_ids = set(freeze_trainable_layer_ids(num_layers, ft.freeze_trainable_layers))
    modules = [m.strip() for m in ft.freeze_trainable_modules.split(",") if m.strip()]
    extra = [m.strip() for m in (ft.freeze_extra_modules or "").split(",") if m.strip()]
    def language(name: str) -> bool:
        return family is None or part_of(family, name) in ("language", "other")

    names = [name for name, _ in model.named_parameters() if language(name)]
    if modules != ["all"]:
        known = {part for name in names if _LAYER_INDEX.search(name) for part in name.split(".")}
        unknown = [m for m in modules if m not in known]
        if unknown:
            raise UserError(f"freeze_trainable_modules: no module named {', '.join(unknown)} inside the layers; "
                            f"names found: {', '.join(sorted(known - set('0123456789')))[:300]}")
    if extra:
        outside = {part for name in names if not _LAYER_INDEX.search(name) for part in name.split(".")}
        unknown = [m for m in extra if m not in outside]
        if unknown:
            raise UserError(f"freeze_extra_modules: no module named {', '.join(unknown)} outside the layers; "
                            f"names found: {', '.join(sorted(outside))}")
    for name, param in model.named_parameters():
        if not language(name):  # a tower or projector: the freeze_* keys decide
            param.requires_grad_(part_of(family, name) in parts and is_trainable)
            continue
        match = _LAYER_INDEX.search(name)
        pieces = set(name.split("."))
        if match:
            trainable = int(match.group(1)) in layer_ids and (modules == ["all"] or bool(pieces & set(modules)))
        else:
            trainable = bool(pieces & set(extra))
        param.requires_grad_(trainable and is_trainable and "language" in parts)
    if is_trainable:
        _cast_trainable_to_fp32(model)
    logger.info("freeze: training layers %s (modules: %s%s)", sorted(layer_ids), ",".join(modules),
                f"; extra: {','.join(extra)}" if extra else "")
    if family is not None and is_trainable:
        log_parts(family, parts)
    return model


def lora_config(model: Any, ft: FinetuningArguments) -> Any:
    from peft import LoraConfig, TaskType

    from tunelab.model.legacy import family_of_model, native_lora_targets

    targets = native_lora_targets(ft.lora_target_modules(), family_of_model(model))
    available = linear_module_names(model)
    if targets == ["all"]:
        targets = available
    else:
        missing = [t for t in targets if t not in available]
        if missing:
            raise UserError(
                f"lora_target: {', '.join(missing)} is not a linear layer of this model; its linear layers are "
                f"{', '.join(available)} (or use lora_target: all)."
            )
    from tunelab.model.multimodal_tuning import lora_module_names, multimodal_family_of

    family = multimodal_family_of(model)
    if family is not None:  # the parts the freeze_* keys leave trainable only (the language model by default)
        targets = lora_module_names(model, family, ft, targets)
    init: bool | str = True
    if ft.pissa_init:
        init = "pissa" if ft.pissa_iter == -1 else f"pissa_niter_{ft.pissa_iter}"
    shown = ",".join(targets) if family is None else f"{len(targets)} linear layers"
    logger.info("lora: rank %d, alpha %s, targets %s", ft.lora_rank, ft.lora_alpha, shown)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=ft.lora_rank,
        lora_alpha=ft.lora_alpha if ft.lora_alpha is not None else ft.lora_rank * 2,
        lora_dropout=ft.lora_dropout,
        target_modules=targets,
        use_rslora=ft.use_rslora,
        use_dora=ft.use_dora,
        init_lora_weights=init,
        modules_to_save=ft.additional_target_modules() or None,
    )


def apply_lora(model: Any, ft: FinetuningArguments, margs: ModelArguments, is_trainable: bool) -> Any:
    """Merge earlier adapters, then continue the last one or start a new one (`create_new_adapter`)."""
    from peft import PeftModel, get_peft_model

    adapters = margs.adapter_paths()
    # Adapters merged into the base: all of them for inference / a new adapter, all but the last otherwise.
    resume_last = is_trainable and adapters and not ft.create_new_adapter
    to_merge = adapters[:-1] if resume_last else adapters
    if not is_trainable and len(adapters) == 1:
        to_merge = []  # inference keeps a single adapter unmerged (exact, and switchable)
    for path in to_merge:
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
        logger.info("merged adapter %s into the base model", path)
    if not is_trainable:
        if adapters and not to_merge:
            model = PeftModel.from_pretrained(model, adapters[-1], is_trainable=False)
            logger.info("loaded adapter %s", adapters[-1])
        for param in model.parameters():
            param.requires_grad_(False)
        return model
    if resume_last:
        model = PeftModel.from_pretrained(model, adapters[-1], is_trainable=True)
        logger.info("continuing to train adapter %s", adapters[-1])
    else:
        for param in model.parameters():
            param.requires_grad_(False)
        model = get_peft_model(model, lora_config(model, ft))
    _cast_trainable_to_fp32(model)
    return model


TUNING_METHODS: dict[str, Callable[[Any, FinetuningArguments, ModelArguments, bool], Any]] = {
    "full": apply_full,
    "freeze": apply_freeze,
    "lora": apply_lora,
}


def apply_tuning(model: Any, ft: FinetuningArguments, margs: ModelArguments, is_trainable: bool = True) -> Any:
    model = TUNING_METHODS[ft.finetuning_type](model, ft, margs, is_trainable)
    if is_trainable:
        trainable, total = count_parameters(model)
        logger.info("trainable parameters: %s of %s (%.4f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / max(total, 1))
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
