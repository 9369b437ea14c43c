"""Everything an exported folder needs besides the weights: tokenizer, chat template, stop tokens, value head.

The anchor's users lost their chat template on export; here the tokenizer keeps its own, and a
tokenizer without one gets the named template's jinja (`prepare_tokenizer_for_saving`). The
generation config learns the template's end-of-turn ids, so `generate()` and vLLM stop where the
fine-tuned model ends its turns (a base model's config often knows only `<|endoftext|>`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from tunelab.data.templates.base import Template

logger = logging.getLogger("tunelab.export")

VALUE_HEAD_FILES = ("value_head.safetensors", "value_head.bin")


def save_tokenizer(tokenizer: Any, template: Template | None, out_dir: Path, source: str | Path | None = None,
                   trust_remote_code: bool = False) -> bool:
    """Write the tokenizer with its original chat template (or the named template's when it has none).

    An unchanged tokenizer (no added or new special tokens, the same length, the base's chat template) is
    written as the base model's own files, byte for byte: transformers 5's `save_pretrained` rewrites
    `tokenizer_config.json` in a form transformers 4.x and llama.cpp's converter cannot read. A changed one
    is saved, then its `tokenizer_config.json` is made readable by 4.x (`make_readable_by_transformers4`);
    so is a copied one that transformers 5 wrote (a base saved with transformers 5, as tunelab's tiny ones).
    Returns True when the base's files were copied.
    """
    from tunelab.data.templates import prepare_tokenizer_for_saving

    if template is not None and not getattr(tokenizer, "chat_template", None):
        logger.info("the tokenizer has no chat template; writing the jinja of template '%s'", template.name)
    if template is not None:
        prepare_tokenizer_for_saving(tokenizer, template)
    elif not getattr(tokenizer, "chat_template", None):
        logger.warning("the tokenizer has no chat template and no template is named; the export has none")
    folder = _tokenizer_folder(source)
    if folder is not None:
        why = _copy_if_unchanged(tokenizer, folder, out_dir, trust_remote_code)
        if why is None:
            logger.info("the tokenizer is the base model's: its files were copied unchanged from %s", folder)
            return True
        logger.info("the tokenizer differs from the base model's (%s): saving it", why)
    tokenizer.save_pretrained(out_dir)
    make_readable_by_transformers4(out_dir, _json_or_empty(folder / TOKENIZER_CONFIG) if folder else {})
    return False


TOKENIZER_CONFIG = "tokenizer_config.json"
# every file a tokenizer folder may hold besides the ones its class names (`vocab_files_names`)
TOKENIZER_FILES = ("tokenizer.json", TOKENIZER_CONFIG, "special_tokens_map.json", "added_tokens.json", "vocab.json",
                   "merges.txt", "vocab.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json")
CHAT_TEMPLATE_FILE = "chat_template.jinja"
_TRANSFORMERS5_CLASSES = ("TokenizersBackend", "SentencePieceBackend", "PythonBackend")  # unknown to 4.x
_LOAD_TIME_KEYS = ("is_local", "local_files_only")  # how transformers 5 was called, not what the tokenizer is


def _json_or_empty(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tokenizer_folder(source: str | Path | None) -> Path | None:
    """The folder the base tokenizer's files are in: a local folder, or a hub id's snapshot in the local cache."""
    if source is None:
        return None
    path = Path(source)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(source), local_files_only=True, allow_patterns=[*TOKENIZER_FILES, "*.py"]))
    except Exception:  # noqa: BLE001 - not cached or not a hub id: the tokenizer is saved instead
        return None


def _tokenizer_file_names(tokenizer: Any, folder: Path) -> list[str]:
    """The base folder's tokenizer files: the usual names, the class's own, its extra chat templates and code."""
    names = [*TOKENIZER_FILES, *getattr(tokenizer, "vocab_files_names", {}).values()]
    names += [f"additional_chat_templates/{p.name}" for p in sorted((folder / "additional_chat_templates").glob("*.jinja"))]
    auto_map = _json_or_empty(folder / TOKENIZER_CONFIG).get("auto_map") or {}
    classes = auto_map.get("AutoTokenizer", []) if isinstance(auto_map, dict) else auto_map
    for reference in classes if isinstance(classes, list) else [classes]:
        if isinstance(reference, str) and "--" not in reference:  # code in the folder, not in another repository
            names.append(reference.rsplit(".", 1)[0] + ".py")
    return sorted({name for name in names if isinstance(name, str) and (folder / name).is_file()})


def _has_chat_template(folder: Path, names: list[str]) -> bool:
    return (CHAT_TEMPLATE_FILE in names or "chat_template.json" in names
            or bool(_json_or_empty(folder / TOKENIZER_CONFIG).get("chat_template")))


def _copy_if_unchanged(tokenizer: Any, folder: Path, out_dir: Path, trust_remote_code: bool) -> str | None:
    """Copy the base's tokenizer files into `out_dir` and keep them when they load as `tokenizer`; else remove
    them and say how the tokenizer differs. A chat template the base lacks is added as `chat_template.jinja`,
    which transformers 4.43+ and llama.cpp's converter read."""
    from transformers import AutoTokenizer

    names = _tokenizer_file_names(tokenizer, folder)
    if TOKENIZER_CONFIG not in names and "tokenizer.json" not in names:
        return "the base folder has no tokenizer files"
    written = []
    for name in names:
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, out_dir / name)
        written.append(out_dir / name)
    base_config = _json_or_empty(folder / TOKENIZER_CONFIG)
    if not readable_by_transformers4(base_config):  # a base that transformers 5 wrote (tunelab's tiny models)
        make_readable_by_transformers4(out_dir, base_config)
        logger.info("the base's %s was written by transformers 5: rewritten so transformers 4.x reads it too",
                    TOKENIZER_CONFIG)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template and not _has_chat_template(folder, names):
        (out_dir / CHAT_TEMPLATE_FILE).write_text(template, encoding="utf-8")
        written.append(out_dir / CHAT_TEMPLATE_FILE)
    try:
        copied = AutoTokenizer.from_pretrained(out_dir, trust_remote_code=trust_remote_code)
        why = tokenizer_difference(tokenizer, copied)
    except Exception as error:  # noqa: BLE001 - a copy that does not load is not kept; the tokenizer is saved
        why = f"its files do not load on their own: {type(error).__name__}"
    if why is not None:
        for path in written:
            path.unlink(missing_ok=True)
    return why


def tokenizer_difference(tokenizer: Any, base: Any) -> str | None:
    """How `tokenizer` (as training used it) differs from `base` (loaded from files), or None when it does not.
    A pad token that tunelab's loader set to eos (the base has none) is no difference: every load repeats it."""
    if len(tokenizer) != len(base):
        return f"{len(tokenizer)} tokens, the base has {len(base)}"
    if tokenizer.get_vocab() != base.get_vocab():
        return "the vocabulary differs"

    def added(t: Any) -> dict[int, tuple[str, bool]]:
        return {i: (str(token), bool(getattr(token, "special", False))) for i, token in t.added_tokens_decoder.items()}

    if added(tokenizer) != added(base):
        return "added tokens differ"
    mine, theirs = dict(tokenizer.special_tokens_map), dict(base.special_tokens_map)
    if base.pad_token is None and tokenizer.pad_token == tokenizer.eos_token:
        mine.pop("pad_token", None)
    if mine != theirs or set(map(str, tokenizer.all_special_tokens)) != set(map(str, base.all_special_tokens)):
        return "special tokens differ"
    if tokenizer.chat_template != base.chat_template:
        return "the chat template differs"
    probe = "Hello world"
    if tokenizer(probe)["input_ids"] != base(probe)["input_ids"]:
        return "it encodes text differently (bos / eos added)"
    return None


def readable_by_transformers4(config: dict[str, Any]) -> bool:
    """False for a `tokenizer_config.json` only transformers 5 reads (see `make_readable_by_transformers4`)."""
    return (config.get("tokenizer_class") not in _TRANSFORMERS5_CLASSES
            and not isinstance(config.get("extra_special_tokens"), list)
            and not any(key in config for key in _LOAD_TIME_KEYS))


def make_readable_by_transformers4(out_dir: Path, base_config: dict[str, Any]) -> None:
    """Rewrite a transformers-5 `tokenizer_config.json` so transformers 4.x reads it too (5 still does).

    transformers 4.57 refuses the class name `TokenizersBackend`, fails on `extra_special_tokens` as a list
    (it expects a dict of named tokens), and LlamaTokenizerFast-style classes read `add_bos_token` /
    `add_eos_token`, which 5 leaves out. So: the base's original class (or `PreTrainedTokenizerFast`), the
    base's `add_bos_token` / `add_eos_token`, the extra special tokens as `additional_special_tokens`.
    """
    import json

    path = out_dir / TOKENIZER_CONFIG
    config = _json_or_empty(path)
    if not config:
        return
    original = base_config.get("tokenizer_class")
    if isinstance(original, str) and original and original not in _TRANSFORMERS5_CLASSES:
        config["tokenizer_class"] = original
    elif config.get("tokenizer_class") in _TRANSFORMERS5_CLASSES and (out_dir / "tokenizer.json").is_file():
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("add_bos_token", "add_eos_token"):
        if isinstance(base_config.get(key), bool):
            config[key] = base_config[key]
    extra = config.get("extra_special_tokens")
    if isinstance(extra, list):
        listed = [str(t.get("content", "")) if isinstance(t, dict) else str(t) for t in extra]
        known = config.get("additional_special_tokens") or []
        config["additional_special_tokens"] = [*known, *(t for t in listed if t not in known)]
        del config["extra_special_tokens"]
    for key in _LOAD_TIME_KEYS:
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_stop_tokens(model: Any, tokenizer: Any, template: Template | None) -> list[int]:
    """Put the template's stop ids into `generation_config.eos_token_id` (logged); return the ids."""
    from tunelab.data.encode import stop_token_ids

    config = model.generation_config
    current = config.eos_token_id
    ids = [] if current is None else ([current] if isinstance(current, int) else list(current))
    wanted = stop_token_ids(tokenizer, template) if template is not None else []
    added = [i for i in wanted if i not in ids]
    if added:
        ids += added
        config.eos_token_id = ids[0] if len(ids) == 1 else ids
        logger.info("generation_config.eos_token_id = %s (added the template's stop token(s) %s)", ids,
                    ", ".join(repr(tokenizer.convert_ids_to_tokens(i)) for i in added))
    if config.pad_token_id is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return ids


def find_value_head(folders: list[str]) -> Path | None:
    """A reward model's value head in the last adapter folder, else the base model folder."""
    for folder in reversed(folders):
        for name in VALUE_HEAD_FILES:
            path = Path(folder) / name
            if path.is_file():
                return path
    return None


def copy_value_head(folders: list[str], out_dir: Path) -> Path | None:
    """Copy `value_head.safetensors` (or .bin) next to the merged weights, as the anchor does for rm."""
    source = find_value_head(folders)
    if source is None:
        return None
    target = out_dir / source.name
    shutil.copyfile(source, target)
    logger.info("copied the value head %s to %s", source, target)
    return target


def copy_model_code(out_dir: Path) -> Path | None:
    """A model of a tunelab-implemented family (docs/models.md) is written with that family's module next to
    it (config.json's auto_map names it), so plain transformers loads the export with trust_remote_code."""
    import json

    from tunelab.model.legacy import family_named
    from tunelab.model.legacy.convert import FAMILY_KEY

    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    family = family_named(config.get(FAMILY_KEY))
    if family is None or family.code_file is None:
        return None
    target = out_dir / family.code_file.name
    shutil.copyfile(family.code_file, target)
    logger.info("wrote %s next to the weights: plain transformers loads this %s export with trust_remote_code=True "
                "(tunelab loads it without)", target.name, family.display)
    return target


#: the files a multimodal model's processor is published with, besides the tokenizer's
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json",
                   "chat_template.json")


def save_processor(processor: Any, out_dir: Path, source: str | Path | None = None) -> list[str]:
    """Write a multimodal model's processor files (image processor, processor config): the base's own files
    byte for byte when it has them (training never changes a processor, and transformers 5's
    `save_pretrained` writes a layout older readers may not know), else `processor.save_pretrained`.
    Call before `save_tokenizer`, which then writes the tokenizer files by its own rule. Returns the names."""
    folder = _tokenizer_folder(source)
    names = [name for name in PROCESSOR_FILES if folder is not None and (folder / name).is_file()]
    if folder is not None and names:
        for name in names:
            shutil.copyfile(folder / name, out_dir / name)
        logger.info("the processor files were copied unchanged from %s: %s", folder, ", ".join(names))
        return names
    before = {p.name for p in out_dir.iterdir()}
    processor.save_pretrained(out_dir)
    written = sorted(p.name for p in out_dir.iterdir() if p.name not in before)
    logger.info("saved the processor (%s): %s", type(processor).__name__, ", ".join(written))
    return written
