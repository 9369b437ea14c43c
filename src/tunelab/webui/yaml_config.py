"""Field values → the YAML a job runs, and back.

The board never passes settings to a job any other way: it writes this YAML to a file and runs
`tunelab train|eval|export that.yaml`, so what the Preview shows is exactly what runs, and the file
can be rerun by hand.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tunelab.errors import UserError
from tunelab.webui.fields import FIXED_KEYS, defaults, field_to_config, fields_of

JOB_COMMANDS = {"train": "train", "eval": "eval", "export": "export", "chat": "chat"}


def merged_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The board's defaults with the given field values on top (tests and callers pass only some)."""
    return {**defaults(), **values}


def parse_extra(extra_yaml: str | None) -> dict[str, Any]:
    """The "extra keys" box: a YAML mapping added last, so it can set any key the fields do not have."""
    if not extra_yaml or not extra_yaml.strip():
        return {}
    from tunelab.config.config_file import load_yaml

    extra = load_yaml(Path("extra keys"), extra_yaml)  # bounded aliases, huge numbers: one message, as in files
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise UserError("extra keys: write a YAML mapping, one `key: value` per line")
    return {str(k): v for k, v in extra.items()}


def build_config(job: str, values: Mapping[str, Any], extra_yaml: str | None = None) -> dict[str, Any]:
    """The config dict of one job, in table order: fixed keys, then each field's keys, then extras."""
    values = merged_values(values)
    config: dict[str, Any] = {}
    for field in fields_of(job):
        config.update(field_to_config(field, values[field.name], values))
    if job == "train":
        config = {**FIXED_KEYS[job], **config}
    config.update(parse_extra(extra_yaml))
    return config


def to_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, default_flow_style=False)


def command_line(job: str, yaml_path: str | Path) -> str:
    return f"tunelab {JOB_COMMANDS[job]} {shlex.quote(str(yaml_path))}"


def write_yaml(config: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_yaml(config), encoding="utf-8")
    tmp.replace(path)
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file for "Load config", read as `tunelab train` reads it (UTF-8, bounded aliases, one message)."""
    from tunelab.config.config_file import read_config_file

    return read_config_file(Path(path))


BOARD_SOURCE = "board settings"  # how a refusal names the config the board built (never its scratch file)


def check_config(job: str, config: Mapping[str, Any]) -> None:
    """Run exactly what `tunelab check` runs (for a train job: what `tunelab train` refuses before it
    loads anything), before any board button starts something: Start (train, eval), Export, Load model.
    Raises one UserError listing every problem; the messages name the board's settings, not the scratch
    file the parser read them from."""
    import tempfile

    from tunelab.cli.cmd_check import find_all_problems
    from tunelab.config.parser import read_config
    from tunelab.errors import ProblemList

    with tempfile.TemporaryDirectory(prefix="tunelab_webui_check_") as scratch:
        path = write_yaml(config, Path(scratch) / f"{job}.yaml")
        try:
            parsed, problems = read_config([str(path)])
            problems = problems + find_all_problems(parsed, for_training=job == "train")
        except UserError as error:
            problems = list(getattr(error, "problems", None) or [error.message])
        names = sorted({str(path), str(path.resolve())}, key=len, reverse=True)
    if problems:
        cleaned = []
        for problem in dict.fromkeys(problems):
            for name in names:
                problem = problem.replace(f"{name}: ", "").replace(name, BOARD_SOURCE)
            cleaned.append(problem)
        raise ProblemList(cleaned, BOARD_SOURCE)
