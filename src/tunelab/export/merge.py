"""Loading the base model and its adapters, and merging them, for export and for its verification.

Export and verification need the same two forms of one model: the *reference* (adapters applied by
peft's own forward, the last one unmerged, as inference runs them) and the *merged* model (every
adapter folded into the weights, in the order given). Both come from here so they cannot drift.
A multimodal base loads with its family's class (`model/load.py`) and its processor, which the export
writes beside the weights and its check uses to build a picture prompt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunelab.config.resolved import Config
from tunelab.errors import UserError

if TYPE_CHECKING:
    from tunelab.data.encode_media import MediaEncoding

logger = logging.getLogger("tunelab.export")

_DTYPES = ("float16", "bfloat16", "float32")


def export_torch_dtype(config: Config, model_path: str) -> Any:
    """`export_dtype`, or with `auto` the dtype the base model's config declares (float32 when none).

    The anchor writes the model's own dtype; merging a bf16 model and writing float32 silently
    doubles the files, so `auto` keeps the declared one and the choice is logged.
    """
    import torch
    from transformers import AutoConfig

    wanted = config.export.export_dtype
    if wanted != "auto":
        return getattr(torch, wanted)
    try:
        declared = getattr(AutoConfig.from_pretrained(model_path, trust_remote_code=config.model.trust_remote_code), "dtype", None)
    except (OSError, ValueError):
        declared = None
    if isinstance(declared, str):
        declared = getattr(torch, declared, None)
    dtype = declared if declared in (torch.float16, torch.bfloat16, torch.float32) else torch.float32
    logger.info("export_dtype = %s (export_dtype: auto keeps the base model's dtype)", str(dtype).removeprefix("torch."))
    return dtype


def export_device(config: Config) -> str:
    """`export_device`: cpu, or auto = the GPU when there is one (logged when auto falls back to cpu)."""
    import torch

    if config.export.export_device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        logger.info("export_device: auto found no GPU; merging on the cpu")
    return "cpu"


@dataclass
class LoadedModel:
    """The model, its tokenizer and where the base came from; a multimodal model's processor side."""

    model: Any
    tokenizer: Any
    model_path: str
    dtype: Any
    media: MediaEncoding | None = None


def load_base(config: Config, dtype: Any, device: str = "cpu") -> LoadedModel:
    """The base model and tokenizer exactly as training and inference load them (same added tokens), and a
    multimodal model's processor (sharing that tokenizer)."""
    from tunelab.model.load import load_model, load_tokenizer, resolve_model_path
    from tunelab.model.processor import load_media_encoding

    path = resolve_model_path(config.model.model_name_or_path)
    tokenizer = load_tokenizer(config.model, path)
    media = load_media_encoding(config.model, path, tokenizer)
    model = load_model(config.model, tokenizer, dtype=dtype, model_path=path, for_training=False)
    if device != "cpu":
        model = model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, model_path=path, dtype=dtype, media=media)


def adapter_paths(config: Config) -> list[str]:
    paths = config.model.adapter_paths()
    if paths and config.finetuning.finetuning_type != "lora":
        raise UserError(f"adapter_name_or_path is set but finetuning_type is {config.finetuning.finetuning_type}; use lora.")
    return paths


def _adapter_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of an adapter's weights, read from the file header (no tensor is loaded)."""
    from pathlib import Path

    file = Path(path) / "adapter_model.safetensors"
    if not file.is_file():
        return {}  # a .bin adapter: peft's own load reports what does not fit
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118


def check_adapter_fits(model: Any, path: str, base_name: str) -> None:
    """Refuse an adapter whose matrices do not fit the base before peft prints a page of 'size mismatch'.

    A LoRA pair of a module `W` (out x in) is A (r x in) and B (out x r); an adapter trained on a model of
    another size differs in `in` or `out`. Same shapes but another base (adapter_config.json's
    `base_model_name_or_path`) merge without error into a wrong model, so that is said too.
    """
    import json
    from pathlib import Path

    modules = dict(model.named_modules())
    for name, shape in _adapter_shapes(path).items():
        for part, axis in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if not name.endswith(part):
                continue
            module_name = name.removeprefix("base_model.model.").removesuffix(part)
            module = modules.get(module_name)
            weight = getattr(module, "weight", None)
            if weight is None:
                raise UserError(f"adapter {path} has weights for '{module_name}', which the base model {base_name} does not "
                                "have: the adapter was trained on another architecture.")
            if len(shape) == 2 and weight.dim() == 2 and shape[axis] != weight.shape[axis]:
                raise UserError(f"adapter {path} does not fit the base model {base_name}: '{module_name}' is "
                                f"{tuple(weight.shape)} in the base, but the adapter's {part.strip('.')} is {shape}. The "
                                "adapter was trained on a model of another size; set model_name_or_path to the model it "
                                "was trained on (its adapter_config.json names it).")
    config_file = Path(path) / "adapter_config.json"
    trained_on = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path") if config_file.is_file() else None
    if trained_on and Path(str(trained_on)).name.lower() != Path(str(base_name)).name.lower():
        logger.warning("adapter %s was trained on '%s' (base_model_name_or_path in its adapter_config.json) and is merged "
                       "into '%s'; the shapes fit, but if these are not the same weights the merged model is wrong even "
                       "though its check passes (the check compares with base + adapter of the same base)",
                       path, trained_on, base_name)


def attach_adapters(model: Any, paths: list[str], base_name: str = "") -> Any:
    """Reference form: adapters before the last merged in order, the last one applied by peft unmerged."""
    from peft import PeftModel

    for path in paths:
        check_adapter_fits(model, path, base_name)
    for path in paths[:-1]:
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
        logger.info("merged adapter %s", path)
    if paths:
        model = PeftModel.from_pretrained(model, paths[-1], is_trainable=False)
        model.eval()
    return model


def merge_all(model: Any, paths: list[str]) -> Any:
    """Fold the (last, still unmerged) adapter into the weights; a plain transformers model comes back."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
        logger.info("merged adapter %s", paths[-1])
    return model
