"""What a run leaves in output_dir besides checkpoints: the re-runnable config and the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunelab.config.resolved import Config

RESOLVED_CONFIG_NAME = "tunelab_config.yaml"


def write_resolved_config(config: Config, output_dir: str) -> Path:
    """Save the keys the user set plus every derived value: `tunelab train` on it repeats the run."""
    path = Path(output_dir) / RESOLVED_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    values = config.rerunnable_values()
    values.pop("resume_from_checkpoint", None)
    path.write_text(
        "# written by tunelab: the configuration of this run, re-runnable with `tunelab train " + path.name + "`\n"
        + yaml.safe_dump(values, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path


def save_tokenizer(tokenizer: Any, template: Any, output_dir: str, processor: Any = None) -> None:
    """Save the tokenizer with its original chat template, or the named template's jinja when it had none;
    a multimodal model's processor files too (image processor, its chat template), so that `AutoProcessor`
    loads the output like the model it came from. The processor writes the tokenizer too; the tokenizer
    is written after it, so its files follow the rule above."""
    from tunelab.data.templates import prepare_tokenizer_for_saving

    if processor is not None:
        processor.save_pretrained(output_dir)
    prepare_tokenizer_for_saving(tokenizer, template).save_pretrained(output_dir)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
