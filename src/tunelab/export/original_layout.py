"""`export_format: original`: a merged model of a converted remote-code family, written back in the
family's own layout with its own code files, for users who deploy with that code (transformers 4.x).

The export is first written and verified in the native layout like any other (run.py); this step then
converts the verified weights with the family's inverse conversion (`LegacyFamily.to_original`, tested
bit-exact against the original checkpoints), takes config.json, the Python files and the tokenizer files
from the checkpoint the model was trained from, and checks the result by loading it back the way tunelab
loads any original checkpoint (converting it again) and comparing logits with the reference. The folder
is built beside `export_dir` and swapped in whole, so an interrupted export never leaves a mixed folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.model.legacy import family_named, family_of_folder
from tunelab.model.legacy.convert import FAMILY_KEY, SOURCE_KEY, read_config, read_weights, weight_files
from tunelab.model.legacy.family import LegacyFamily

logger = logging.getLogger("tunelab.export")

#: files of the native export that the original layout replaces with the checkpoint's own
_NATIVE_ONLY = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "chat_template.jinja", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.model", "qwen.tiktoken", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "merges.txt")


def source_family(source: str) -> tuple[LegacyFamily, Path]:
    """The family and original checkpoint folder the export starts from: `source` itself, or, for a model
    fine-tuned from one (a full / freeze run saves the native layout), the folder its config.json names.
    Refused with the reason for anything else."""
    folder = Path(source).expanduser()
    family = family_of_folder(folder) if folder.is_dir() else None
    if family is not None:
        return family, folder
    try:
        config = read_config(folder)
    except (OSError, ValueError):
        config = {}
    family = family_named(config.get(FAMILY_KEY))
    if family is None:
        raise UserError(f"export_format: original writes a remote-code family's own layout, and "
                        f"model_name_or_path '{source}' is not a checkpoint of one tunelab converts (docs/models.md); "
                        "use export_format: native (the default).")
    original = Path(str(config.get(SOURCE_KEY, "")))
    if not original.is_dir() or family_of_folder(original) is not family:
        raise UserError(f"export_format: original: '{source}' was fine-tuned from a {family.display} checkpoint at "
                        f"'{original}', which is no longer there; its config.json and code files are what the "
                        "original layout is made of. Put the checkpoint back there, or use export_format: native.")
    return family, original


def _dtype_name(state: dict[str, Any]) -> str:
    floating = [t.dtype for t in state.values() if t.is_floating_point()]
    return str(floating[0]).removeprefix("torch.") if floating else "float32"


def _shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in read_weights(folder).items()}


def write_original_layout(out: Path, source: str, *, legacy_format: bool = False) -> Path:
    """Replace the native export in `out` by the family's original layout; returns `out`."""
    import torch
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    family, source_folder = source_family(source)
    original_config = read_config(source_folder)
    state = family.to_original(read_weights(out), original_config)
    expected = _shapes(source_folder)
    changed = sorted(name for name, tensor in state.items() if expected.get(name) != tuple(tensor.shape))
    missing = sorted(set(expected) - set(state))
    if changed or missing:
        raise UserError(f"export_format: original: the merged model's tensors do not fit {family.display}'s layout "
                        f"({', '.join((changed + missing)[:4])}{' ...' if len(changed + missing) > 4 else ''}: "
                        "a resized vocabulary or added tokens); export with export_format: native.")
    tmp = out.with_name(out.name + ".original-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in out.iterdir():  # everything the export wrote besides the native model (GGUF, Modelfile, value head)
        if item.is_file() and item.name not in _NATIVE_ONLY and item not in weight_files(out):
            shutil.copy2(item, tmp / item.name)
    config = {**original_config, "torch_dtype": _dtype_name(state)}
    (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for item in source_folder.iterdir():
        if item.is_file() and (item.suffix == ".py" or item.name in _TOKENIZER_FILES
                               or item.name == "generation_config.json"):
            shutil.copy2(item, tmp / item.name)
    if legacy_format:
        torch.save({name: t.contiguous() for name, t in state.items()}, tmp / "pytorch_model.bin")
    else:
        split = split_torch_state_dict_into_shards(state)
        for filename, names in split.filename_to_tensors.items():
            save_file({name: state[name].contiguous() for name in names}, str(tmp / filename),
                      metadata={"format": "pt"})
        if split.is_sharded:
            index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                     "weight_map": split.tensor_to_filename}
            (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    old = out.with_name(out.name + ".native-old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("export_format: original: wrote %s in its own layout with its code files (%s); it loads with "
                "its own code (trust_remote_code, the transformers 4.x it was written for) and in tunelab",
                family.display, ", ".join(sorted(p.name for p in out.glob("*.py"))))
    return out
