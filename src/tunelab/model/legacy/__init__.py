"""The remote-code families tunelab loads natively (docs/models.md): the registry, and the one place a
model path becomes a native folder.

A checkpoint is recognised from its config.json (`matches` of each record); `resolve_native` returns the
cached native folder (`convert.py`) in its place, so nothing downstream knows the difference and none of
the checkpoint's own Python files run. A folder that matches no family is returned unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.model.legacy import baichuan2, chatglm3, qwen, telechat2, yuan2
from tunelab.model.legacy.family import LegacyFamily

logger = logging.getLogger("tunelab.model")

#: every family, in the order their `matches` are tried (the first match wins)
FAMILIES: tuple[LegacyFamily, ...] = (chatglm3.FAMILY, qwen.FAMILY, *baichuan2.FAMILIES, yuan2.FAMILY,
                                       telechat2.FAMILY)


def family_of_config(config: Mapping[str, Any]) -> LegacyFamily | None:
    """The family whose original checkpoint this config.json describes, or None."""
    return next((family for family in FAMILIES if family.matches(config)), None)


def family_named(name: str | None) -> LegacyFamily | None:
    return next((family for family in FAMILIES if family.name == name), None)


def family_of_folder(folder: Path) -> LegacyFamily | None:
    """The family of a local checkpoint folder in its original layout (None for anything else)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return family_of_config(config) if isinstance(config, dict) else None


#: files a family checkpoint needs besides its weights (config, tokenizer, generation config)
_SMALL_FILES = ["*.json", "*.model", "*.tiktoken", "*.txt"]
#: never needed: other frameworks' weights
_OTHER_FRAMEWORKS = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.gguf"]


def _hub_folder(repo_id: str, *, weights: bool) -> Path | None:
    """The downloaded snapshot of a hub id whose config.json is one of the families' (None otherwise).

    The config.json is read from the local cache or the hub; anything that fails here (offline, a wrong
    id) returns None, and the normal load reports it with its own message. Without `weights` (`tunelab
    check`) only the small files come down; with them, one copy of the weights (safetensors when the
    repository has them: ChatGLM3's has .bin and .safetensors of the same 12 GB).
    """
    from huggingface_hub import hf_hub_download, list_repo_files, snapshot_download

    try:
        config = json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - not a reachable hub model: the loader's message explains it
        return None
    if not isinstance(config, dict) or family_of_config(config) is None:
        return None
    if not weights:
        return Path(snapshot_download(repo_id, allow_patterns=_SMALL_FILES))
    try:
        files = list_repo_files(repo_id)
    except Exception:  # noqa: BLE001 - offline: the cached snapshot is what there is
        files = []
    duplicates = ["*.bin", "*.pth", "*.pt"] if any(f.endswith(".safetensors") for f in files) else []
    return Path(snapshot_download(repo_id, ignore_patterns=_OTHER_FRAMEWORKS + duplicates))


def resolve_native(name_or_path: str, *, weights: bool = True) -> str:
    """The native folder for a family checkpoint (converted and cached on first use), else `name_or_path`."""
    from tunelab.model.builtin import cache_root
    from tunelab.model.legacy.convert import native_folder

    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        if name_or_path.count("/") != 1 or name_or_path.startswith((".", "/", "~")):
            return name_or_path
        hub = _hub_folder(name_or_path, weights=weights)
        if hub is None:
            return name_or_path
        folder = hub
    family = family_of_folder(folder)
    if family is None:
        _register_native_class(folder)
        return name_or_path
    try:
        native = native_folder(folder, family, cache_root() / "native", weights=weights)
    except (ValueError, KeyError) as error:  # a layout the family's converter does not reproduce exactly
        raise UserError(f"model_name_or_path '{name_or_path}' is a {family.display} checkpoint that tunelab's native "
                        f"{family.native} does not reproduce exactly: {error}. docs/models.md lists what is covered; "
                        "the checkpoint's own code needs the transformers 4.x it was written for.") from None
    if family.register is not None:
        family.register()
    if weights and family.warnings is not None:  # once per model load (check and config reads pass weights=False)
        for warning in family.warnings(json.loads((native / "config.json").read_text(encoding="utf-8"))):
            logger.warning("%s: %s", name_or_path, warning)
    logger.debug("%s is %s: loading it as %s from %s", name_or_path, family.display, family.native, native)
    return str(native)


def _register_native_class(folder: Path) -> None:
    """A native folder tunelab wrote (a conversion or a merged export) of a tunelab-implemented family loads
    through that family's registered classes, with no trust_remote_code."""
    from tunelab.model.legacy.convert import FAMILY_KEY

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    family = family_named(config.get(FAMILY_KEY)) if isinstance(config, dict) else None
    if family is not None and family.register is not None:
        family.register()


def family_of_model(model: Any) -> LegacyFamily | None:
    """The family a loaded (native) model was converted from, from its config's mark."""
    from tunelab.model.legacy.convert import FAMILY_KEY

    return family_named(getattr(getattr(model, "config", None), FAMILY_KEY, None))


def native_lora_targets(targets: list[str], family: LegacyFamily | None) -> list[str]:
    """`lora_target` names with the family's own module names replaced by the native ones (logged)."""
    if family is None:
        return targets
    mapped: list[str] = []
    for target in targets:
        native = family.lora_targets.get(target)
        if native is not None and tuple(native) != (target,):
            logger.info("lora_target: %s (%s's own name) is %s in tunelab's native layout", target,
                        family.display, ",".join(native))
        for name in native or (target,):
            if name not in mapped:
                mapped.append(name)
    return mapped
