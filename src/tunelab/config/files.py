"""Files and folders a config names (DeepSpeed JSON, adapters, a checkpoint to resume), checked to exist
before anything loads, so a typo in a path is reported with its key instead of deep in a library.

A name that is not on disk may still be a hub id (`org/name`); only names that can only be local
paths (`./x`, `/x`, `~/x`, or more than one `/`) are reported when missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config

_TRUE_OR_FALSE = ("true", "false", "1", "0", "yes", "no", "")


def looks_local(name: str) -> bool:
    """A name that can only be a path on this machine (a hub id is `name` or `org/name`)."""
    return name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or ":\\" in name


def json_file_problem(key: str, value: Any) -> str | None:
    """`key` names a JSON file (DeepSpeed, FSDP): it must exist and parse; a mapping given inline is fine."""
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        return (f"{key}: config file '{value}' does not exist (relative paths start at the folder you run tunelab "
                f"from: {Path.cwd()}); fix the path, or use one of tunelab's examples/deepspeed/*.json.")
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return f"{key}: {value}:{error.lineno}: not valid JSON: {error.msg}."
    return None


def adapter_problems(config: Config) -> list[str]:
    """Each local `adapter_name_or_path` entry must be an adapter folder (adapter_config.json)."""
    problems: list[str] = []
    for entry in config.model.adapter_paths():
        path = Path(entry).expanduser()
        if path.is_dir():
            if not (path / "adapter_config.json").is_file():
                hint = (" It holds config.json, so it is a full model: set model_name_or_path to it instead."
                        if (path / "config.json").is_file() else "")
                problems.append(f"adapter_name_or_path: '{entry}' has no adapter_config.json, so it is not a LoRA "
                                f"adapter folder.{hint}")
        elif path.exists():
            problems.append(f"adapter_name_or_path: '{entry}' is a file; give the adapter's folder.")
        elif looks_local(entry):
            problems.append(f"adapter_name_or_path: '{entry}' does not exist; train the adapter first (its "
                            "output_dir) or fix the path.")
    return problems


def resume_problem(config: Config) -> str | None:
    """`resume_from_checkpoint: PATH` must be a complete checkpoint (`true` picks the latest one itself)."""
    value = config.training_values.get("resume_from_checkpoint")
    if value is None or str(value).strip().lower() in _TRUE_OR_FALSE:
        return None
    if not (Path(str(value)) / "trainer_state.json").is_file():
        return (f"resume_from_checkpoint: {value} is not a complete checkpoint (no trainer_state.json); "
                "use resume_from_checkpoint: true for the latest checkpoint of output_dir.")
    return None


def config_file_problems(config: Config) -> list[str]:
    """The JSON files a config names (DeepSpeed, FSDP), which travel with it: missing or unreadable ones."""
    values = config.training_values
    return [p for p in (json_file_problem("deepspeed", values.get("deepspeed")),
                        json_file_problem("fsdp_config", values.get("fsdp_config"))) if p]


def local_path_problems(config: Config) -> list[str]:
    """The folders of this machine a config names (adapters, a checkpoint to resume): missing or wrong ones."""
    problem = resume_problem(config)
    return ([problem] if problem else []) + adapter_problems(config)


#: the folders a config names for a command's results: key -> what goes there (for the messages)
RESULT_FOLDERS: dict[str, str] = {
    "output_dir": "the run's checkpoints and logs",
    "export_dir": "the exported model",
    "save_dir": "the evaluation results",
}


def output_dir_problem(output_dir: str | None, key: str = "output_dir") -> str | None:
    """A result folder (`key`: output_dir, export_dir, save_dir) must be a folder tunelab can create or write
    to (checked without creating it): an existing file there would be replaced by a folder, or crash the
    command after all its work."""
    if not output_dir:
        return None
    import os

    what = RESULT_FOLDERS.get(key, "the results")
    path = Path(output_dir).expanduser()
    if path.exists() and not path.is_dir():
        return f"{key}: '{output_dir}' is a file; choose a folder for {what}."
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_file():
        return f"{key}: '{output_dir}' is inside {existing}, which is a file; choose another {key}."
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{key}: {existing} is not writable, so '{output_dir}' cannot be created; choose another "
                f"{key} or fix its permissions.")
    return None


def result_folder_problems(config: Config) -> list[str]:
    """export_dir and save_dir, when set (output_dir is checked for training runs, which write it)."""
    folders = {"export_dir": config.export.export_dir, "save_dir": config.evaluation.save_dir}
    return [p for p in (output_dir_problem(value, key) for key, value in folders.items()) if p]
