"""The load-time conversion of a remote-code family's checkpoint into its native layout, cached.

Why a folder and not an in-memory conversion: everything after loading (the tokenizer, `Trainer`
checkpoints, chat / api / vLLM, merging, GGUF export, the web UI) reads a model *folder*; a native
folder in the cache makes every one of them work unchanged, and the second run starts as fast as any
other model. The cache key covers the family's converter version, config.json, the tokenizer files and
the weight files' names, sizes and modification times, so an edited checkpoint is converted again.

The conversion happens in two steps because `tunelab check` needs the native config and tokenizer (to
check lora_target, the template's tokens and the vocabulary) but must not read gigabytes of weights:
`native_folder(..., weights=False)` writes config.json, generation_config.json and the tokenizer;
`weights=True` adds the converted weights. Each step is published atomically (a temporary folder or
file renamed into place), so two processes of one torchrun launch, or an interrupted conversion, never
leave a half-written folder that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.model.legacy.family import ConfigDict, LegacyFamily, StateDict

logger = logging.getLogger("tunelab.model")

#: bump when a converter's output changes, so cached folders of an older tunelab are rebuilt
CONVERTER_VERSION = 1
#: written last into a converted folder: what it was converted from, and whether the weights are there
MARKER = "tunelab_conversion.json"
#: the config.json key that tells a loaded model which family it came from (LoRA names, original export)
FAMILY_KEY = "tunelab_original_family"
#: the config.json key naming the original checkpoint folder: its config.json, code and tokenizer files are
#: what `export_format: original` writes for a model fine-tuned from it (full / freeze runs save native folders)
SOURCE_KEY = "tunelab_original_source"
#: the largest converted weight file (transformers' own default): a 13B checkpoint becomes a few shards
SHARD_SIZE = "5GB"
_TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "qwen.tiktoken",
                    "tokenizer.json", "vocab.json", "merges.txt")


def read_config(folder: Path) -> ConfigDict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's weight files: safetensors when there are any (single or sharded), else PyTorch .bin."""
    for pattern in ("model*.safetensors", "pytorch_model*.bin"):
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if files:
            return files
    return []


def read_weights(folder: Path) -> StateDict:
    """Every tensor of the checkpoint; .bin files are read with weights_only (no pickled code runs)."""
    import torch
    from safetensors.torch import load_file

    state: StateDict = {}
    for path in weight_files(folder):
        if path.suffix == ".safetensors":
            state.update(load_file(str(path)))
        else:
            state.update(torch.load(str(path), map_location="cpu", weights_only=True, mmap=True))
    return state


def cache_key(family: LegacyFamily, source: Path) -> str:
    digest = hashlib.sha256(f"{family.name}:{CONVERTER_VERSION}".encode())
    for name in ("config.json", "generation_config.json", *_TOKENIZER_FILES):
        path = source / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    for path in weight_files(source):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def native_folder(source: Path, family: LegacyFamily, cache: Path, *, weights: bool = True) -> Path:
    """The native folder of `source` under `cache`, converted on first use (and logged once)."""
    out = cache / f"{family.name}-{cache_key(family, source)}"
    marker = _marker(out)
    if marker is None:
        if out.exists():  # published folders always hold the marker: this one was damaged, never trust it
            shutil.rmtree(out, ignore_errors=True)
        _write_config_and_tokenizer(source, family, out)
        marker = _marker(out) or {}
    if weights and not marker.get("weights"):
        _write_weights(source, family, out)
    return out


def native_config_dict(family: LegacyFamily, original: Mapping[str, Any], source: Path | None = None) -> ConfigDict:
    """The native config.json, marked with the family and its source folder (and, for a tunelab class, the
    auto_map to its code)."""
    config = family.native_config(original)
    config[FAMILY_KEY] = family.name
    if source is not None:
        config[SOURCE_KEY] = str(source.resolve())
    if family.code_file is not None:
        config_class, model_class = _class_names(family, str(config["model_type"]))
        module = family.code_file.stem
        config["auto_map"] = {"AutoConfig": f"{module}.{config_class}",
                              "AutoModelForCausalLM": f"{module}.{model_class}"}
    return config


def _class_names(family: LegacyFamily, model_type: str) -> tuple[str, str]:
    """The config and causal-LM class names a tunelab-implemented family registers for `model_type`."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if family.register is not None:
        family.register()
    config_class = CONFIG_MAPPING[model_type]
    return config_class.__name__, MODEL_FOR_CAUSAL_LM_MAPPING[config_class].__name__


def _publish_folder(tmp: Path, out: Path) -> None:
    try:
        tmp.rename(out)
    except OSError:  # another process published it first: its copy is the same conversion
        shutil.rmtree(tmp, ignore_errors=True)


def _write_config_and_tokenizer(source: Path, family: LegacyFamily, out: Path) -> None:
    original = read_config(source)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(native_config_dict(family, original, source), indent=2) + "\n",
                                     encoding="utf-8")
    generation = source / "generation_config.json"
    if generation.is_file():
        shutil.copyfile(generation, tmp / "generation_config.json")
    if family.code_file is not None:
        shutil.copyfile(family.code_file, tmp / family.code_file.name)
    family.build_tokenizer(source).save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({"family": family.name, "source": str(source.resolve()),
                                          "converter_version": CONVERTER_VERSION, "weights": False}, indent=2),
                              encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    _publish_folder(tmp, out)


def _write_weights(source: Path, family: LegacyFamily, out: Path) -> None:
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    original = read_config(source)
    state = family.to_native(read_weights(source), original)
    split = split_torch_state_dict_into_shards(state, max_shard_size=SHARD_SIZE)
    pid = os.getpid()
    for filename, names in split.filename_to_tensors.items():
        tmp = out / f"{filename}.tmp{pid}"
        save_file({name: state[name].contiguous() for name in names}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, out / filename)
    if split.is_sharded:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                 "weight_map": split.tensor_to_filename}
        tmp_index = out / f"model.safetensors.index.json.tmp{pid}"  # another rank may be reading the folder
        tmp_index.write_text(json.dumps(index, indent=2), encoding="utf-8")
        os.replace(tmp_index, out / "model.safetensors.index.json")
    marker = _marker(out) or {}
    marker["weights"] = True
    tmp_marker = out / f"{MARKER}.tmp{pid}"
    tmp_marker.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    os.replace(tmp_marker, out / MARKER)
    size = sum(t.numel() * t.element_size() for t in state.values()) / 2**30
    logger.info("converted %s (%s) to %s in %s (first use only: %d tensors, %.2f GiB; no remote code runs)",
                source, family.display, family.native, out, len(state), size)
    for line in family.conversion:  # what changed on the way, once, beside the line above
        logger.info("  %s", line)
