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


def save_tokenizer(tokenizer: Any, template: Template | None, out_dir: Path) -> None:
    """Save the tokenizer with its original chat template (or the named template's when it has none)."""
    from tunelab.data.templates import prepare_tokenizer_for_saving

    if template is not None and not getattr(tokenizer, "chat_template", None):
        logger.info("the tokenizer has no chat template; writing the jinja of template '%s'", template.name)
    if template is not None:
        prepare_tokenizer_for_saving(tokenizer, template)
    elif not getattr(tokenizer, "chat_template", None):
        logger.warning("the tokenizer has no chat template and no template is named; the export has none")
    tokenizer.save_pretrained(out_dir)


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
