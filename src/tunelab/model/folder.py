"""Is `model_name_or_path` a model this machine can load? Answered from config.json and the file
names alone (no weights), so `tunelab check` and the checks before training refuse a wrong path,
a checkpoint or adapter folder given as the base model, or custom model code, with the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tunelab.config.files import looks_local
from tunelab.config.model_args import ModelArguments

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "qwen.tiktoken")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: a hub id must already be in the local cache."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _cached_on_hub(repo_id: str, cache_dir: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except ValueError:  # not a valid repository id
        return False
    return isinstance(found, str)


def _known_model_type(model_type: str) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return model_type in CONFIG_MAPPING


def _config_problems(key: str, name: str, folder: Path, args: ModelArguments) -> list[str]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return [f"{key}: {folder / 'config.json'} cannot be read as JSON ({error}); the model folder is damaged."]
    if not isinstance(config, dict):
        return [f"{key}: {folder / 'config.json'} is not a JSON object; the model folder is damaged."]
    from tunelab.model.legacy import family_of_config

    gptq = _gptq_problems(key, name, config)
    if family_of_config(config) is not None:
        return gptq  # tunelab loads it natively: its own code is never needed (docs/models.md)
    problems: list[str] = []
    model_type = config.get("model_type")
    auto_map = config.get("auto_map") if isinstance(config.get("auto_map"), dict) else {}
    if auto_map and not (model_type and _known_model_type(str(model_type))):
        if not args.trust_remote_code:
            problems.append(f"{key}: '{name}' ships its own model code (auto_map in config.json) for model type "
                            f"'{model_type}'; set trust_remote_code: true if you trust that code.")
        refs = [ref for value in auto_map.values() for ref in (value if isinstance(value, list) else [value])
                if isinstance(ref, str) and "--" not in ref]  # "org/repo--module.Class" lives in another repository
        modules = sorted({ref.rsplit(".", 1)[0] + ".py" for ref in refs})
        missing = [m for m in modules if not (folder / m).is_file()]
        if missing:
            problems.append(f"{key}: '{name}' names model code that is not in the folder: {', '.join(missing)} "
                            "(auto_map in config.json); copy those files from the model's repository.")
    elif not model_type:
        problems.append(f"{key}: {folder / 'config.json'} has no model_type, so transformers cannot tell which "
                        "architecture it is.")
    elif not _known_model_type(str(model_type)):
        import transformers

        problems.append(f"{key}: model type '{model_type}' is not built into transformers {transformers.__version__} "
                        "and the folder ships no code for it (no auto_map in config.json); use a newer transformers "
                        "or the model's own code with trust_remote_code: true.")
    return problems + gptq


def _gptq_problems(key: str, name: str, config: dict[str, object]) -> list[str]:
    """A GPTQ checkpoint (Qwen-1_8B-Chat-Int4): transformers loads it through optimum + gptqmodel, whose
    kernels are written for CUDA GPUs; each missing piece is named with its fix."""
    quantization = config.get("quantization_config")
    if not isinstance(quantization, dict) or str(quantization.get("quant_method", "")).lower() != "gptq":
        return []
    from tunelab.config.hardware import cuda_available
    from tunelab.optional_packages import is_installed

    bits = quantization.get("bits", "?")
    what = f"{key}: '{name}' is a GPTQ-quantized checkpoint ({bits}-bit, quantization_config in config.json)"
    problems: list[str] = []
    if not cuda_available():
        problems.append(f"{what}: its kernels need a CUDA GPU and none was found; on this machine use the "
                        "unquantized model (e.g. Qwen-1_8B-Chat for Qwen-1_8B-Chat-Int4).")
    missing = [package for package in ("optimum", "gptqmodel") if not is_installed(package)]
    if missing:
        problems.append(f"{what}: loading it needs {' and '.join(missing)}; install them with "
                        "pip install \"tunelab[gptq]\".")
    return problems


def model_folder_problems(args: ModelArguments, *, key: str = "model_name_or_path") -> list[str]:
    """What is wrong with `args.model_name_or_path` as a model to load, each with the fix; [] when fine."""
    name = args.model_name_or_path
    if not name:
        return []
    from tunelab.model.builtin import is_builtin

    if is_builtin(name):
        return []
    folder = Path(name).expanduser()
    if folder.is_file():
        return [f"{key}: '{name}' is a file; give the folder that holds config.json and the weights."]
    if not folder.exists():
        if looks_local(name):
            return [f"{key}: '{name}' is not an existing folder (relative paths start at {Path.cwd()}); check the "
                    "path, or download the model there first."]
        if hub_offline() and not _cached_on_hub(name, args.cache_dir):
            return [f"{key}: '{name}' is not a local folder, and the hub is offline (HF_HUB_OFFLINE) with no cached "
                    f"copy; download it first (`hf download {name} --local-dir models/{name.split('/')[-1]}`) and "
                    "set model_name_or_path to that folder."]
        return []  # a hub id: downloaded when the run starts
    if not (folder / "config.json").is_file():
        if (folder / "adapter_config.json").is_file():
            base = _adapter_base(folder)
            return [f"{key}: '{name}' is a LoRA adapter folder (adapter_config.json), not a model; set "
                    f"adapter_name_or_path: {name} and model_name_or_path: {base or 'the base model it was trained on'}."]
        checkpoints = sorted(p.name for p in folder.glob("checkpoint-*") if (p / "config.json").is_file())
        hint = f" It holds {checkpoints[-1]}/, which is one." if checkpoints else ""
        return [f"{key}: '{name}' has no config.json, so it is not a model folder; point it at the folder that "
                f"holds config.json and the weights.{hint}"]
    problems = _config_problems(key, name, folder, args)
    if not any((folder / f).is_file() for f in TOKENIZER_FILES) and not list(folder.glob("*.tiktoken")):
        problems.append(f"{key}: '{name}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}); copy the "
                        "tokenizer of the model into the folder.")
    return problems


def _adapter_base(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return str(base) if base else None
