"""The data set registry: `dataset_info.json` entries with the anchor's schema and defaults.

One entry says where a data set lives (a local file or folder, a hub repository, a loading script
or a cloud file) and how its columns and message tags map onto tunelab's conversation type. The
defaults are the anchor's, so its registries load unchanged.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tunelab.errors import UserError
from tunelab.utils.logging import log_once

logger = logging.getLogger("tunelab.data")

DATA_CONFIG = "dataset_info.json"
DEFAULT_DATASET_DIR = "data"
FORMATTINGS = ("alpaca", "sharegpt", "openai")
COLUMN_NAMES = (
    "prompt", "query", "response", "history", "messages", "system", "tools",
    "images", "videos", "audios", "chosen", "rejected", "kto_tag",
)  # fmt: skip
TAG_NAMES = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
ENTRY_KEYS = (
    "file_name", "hf_hub_url", "ms_hub_url", "script_url", "cloud_file_name", "file_sha1", "subset", "split",
    "folder", "revision", "num_samples", "ranking", "formatting", "columns", "tags",
)  # fmt: skip

# The anchor's defaults. A `columns` object replaces the column defaults as a whole (a column it does not
# name is not read), as in the anchor; a `tags` object only overrides the tags it names.
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
CHAT_COLUMNS = {"messages": "conversations"}
SHAREGPT_TAGS = {
    "role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
    "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system",
}  # fmt: skip
OPENAI_TAGS = {
    "role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
    "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system",
}  # fmt: skip

LoadFrom = Literal["file", "hf_hub", "ms_hub", "script", "cloud_file"]


@dataclass(frozen=True)
class DatasetAttr:
    """One resolved registry entry: where to load from and how to read the rows."""

    name: str
    load_from: LoadFrom
    path: str  # file or folder path, hub repository id, script folder or cloud URL
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    revision: str | None = None
    num_samples: int | None = None
    file_sha1: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def column(self, key: str) -> str | None:
        """The data's column name for tunelab's `key` (prompt, messages, ...), or None when not read."""
        return self.columns.get(key)

    def tag(self, key: str) -> str | None:
        return self.tags.get(key)


def bundled_data_dir() -> Path:
    """The demo data shipped inside the tunelab package (identity, alpaca_en_demo, ...)."""
    return Path(str(resources.files("tunelab") / "resources" / "data"))


def resolve_dataset_dir(dataset_dir: str | os.PathLike[str] | None) -> Path:
    """`dataset_dir` as given, or the bundled folder when it is the default `data` and `./data` is absent."""
    value = str(dataset_dir) if dataset_dir else DEFAULT_DATASET_DIR
    path = Path(value)
    if value == DEFAULT_DATASET_DIR and not path.is_dir():
        bundled = bundled_data_dir()
        log_once(logger, "dataset_dir: ./data does not exist; using tunelab's bundled data in %s", bundled)
        return bundled
    return path


def bundled_entry(name: str) -> dict[str, Any] | None:
    """tunelab's own registry entry for `name` (identity, alpaca_en_demo, ...), or None."""
    info = load_dataset_info(bundled_data_dir())
    entry = info.get(name)
    return entry if isinstance(entry, dict) else None


def load_dataset_info(dataset_dir: Path) -> dict[str, dict[str, Any]]:
    """Parse `dataset_dir/dataset_info.json`, failing with the file and the reason."""
    config_path = dataset_dir / DATA_CONFIG
    if not config_path.is_file():
        raise UserError(f"{config_path} not found: dataset_dir must hold a {DATA_CONFIG} that registers the data sets.")
    try:
        info = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{config_path}:{error.lineno}: malformed JSON (column {error.colno}): {error.msg}") from None
    if not isinstance(info, dict):
        raise UserError(f"{config_path}: expected an object mapping data set names to entries.")
    return info


def unknown_dataset_error(name: str, info: dict[str, Any], dataset_dir: Path) -> UserError:
    bundled_dir = bundled_data_dir()
    bundled = [] if dataset_dir.resolve() == bundled_dir.resolve() else sorted(load_dataset_info(bundled_dir))
    close = difflib.get_close_matches(name, list(dict.fromkeys([*info, *bundled])), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    known = ", ".join(sorted(info)[:30]) or "(none)"
    also = f"; bundled with tunelab: {', '.join(b for b in bundled if b not in info)}" if bundled else ""
    return UserError(
        f"unknown data set '{name}': it is not registered in {dataset_dir / DATA_CONFIG}.{hint} Registered: {known}{also}"
    )


def use_modelscope() -> bool:
    """The anchor's switch: ModelScope sources are preferred when USE_MODELSCOPE_HUB is set."""
    return os.environ.get("USE_MODELSCOPE_HUB", "0").lower() in ("1", "true", "yes")


def parse_entry(name: str, entry: Any, dataset_dir: Path) -> DatasetAttr:
    """Turn one registry entry into a `DatasetAttr`, naming the key when the entry is wrong."""
    where = f"{dataset_dir / DATA_CONFIG}: data set '{name}'"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected an object, got {type(entry).__name__}")
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, ENTRY_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"{where}: unknown key '{key}'{hint}. Valid keys: {', '.join(ENTRY_KEYS)}")

    has_hf, has_ms = "hf_hub_url" in entry, "ms_hub_url" in entry
    load_from: LoadFrom
    if has_hf or has_ms:
        if (use_modelscope() and has_ms) or not has_hf:
            load_from, path = "ms_hub", entry["ms_hub_url"]
        else:
            load_from, path = "hf_hub", entry["hf_hub_url"]
    elif "script_url" in entry:
        load_from, path = "script", entry["script_url"]
    elif "cloud_file_name" in entry:
        load_from, path = "cloud_file", entry["cloud_file_name"]
    elif "file_name" in entry:
        load_from, path = "file", entry["file_name"]
    else:
        raise UserError(f"{where}: needs one of file_name, hf_hub_url, ms_hub_url, script_url, cloud_file_name")
    if not isinstance(path, str) or not path:
        raise UserError(f"{where}: the source must be a non-empty string")

    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        raise UserError(f"{where}: formatting must be one of {', '.join(FORMATTINGS)}, got '{formatting}'")

    columns_given = entry.get("columns")
    if columns_given is not None and not isinstance(columns_given, dict):
        raise UserError(f"{where}: columns must be an object")
    if columns_given is None:
        columns = dict(ALPACA_COLUMNS if formatting == "alpaca" else CHAT_COLUMNS)
    else:
        bad = [key for key in columns_given if key not in COLUMN_NAMES]
        if bad:
            close = difflib.get_close_matches(bad[0], COLUMN_NAMES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{where}: unknown column '{bad[0]}'{hint}. Valid columns: {', '.join(COLUMN_NAMES)}")
        columns = {key: value for key, value in columns_given.items() if value}

    tags_given = entry.get("tags") or {}
    if not isinstance(tags_given, dict):
        raise UserError(f"{where}: tags must be an object")
    bad_tags = [key for key in tags_given if key not in TAG_NAMES]
    if bad_tags:
        close = difflib.get_close_matches(bad_tags[0], TAG_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"{where}: unknown tag '{bad_tags[0]}'{hint}. Valid tags: {', '.join(TAG_NAMES)}")
    if "formatting" not in entry:
        _check_chat_keys_without_formatting(where, entry)
    tags = dict(OPENAI_TAGS if formatting == "openai" else SHAREGPT_TAGS)
    tags.update({key: value for key, value in tags_given.items() if value})

    num_samples = entry.get("num_samples")
    if num_samples is not None and (not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1):
        raise UserError(f"{where}: num_samples must be a positive integer, got {num_samples!r}")
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise UserError(f"{where}: ranking must be true or false, got {ranking!r}")

    if load_from in ("file", "script"):
        path = str(dataset_dir / path)
    return DatasetAttr(
        name=name,
        load_from=load_from,
        path=path,
        formatting=formatting,
        ranking=ranking,
        subset=entry.get("subset"),
        split=entry.get("split", "train"),
        folder=entry.get("folder"),
        revision=entry.get("revision"),
        num_samples=num_samples,
        file_sha1=entry.get("file_sha1"),
        columns=columns,
        tags=tags,
    )


def _check_chat_keys_without_formatting(where: str, entry: dict[str, Any]) -> None:
    """An entry with `messages` / `tags` (sharegpt keys) but no `formatting` is read as alpaca, the default,
    and every row would fail; seed tutorials show such entries, so the fix is named here."""
    columns = entry.get("columns") if isinstance(entry.get("columns"), dict) else {}
    chat_keys = [f"columns.{key}" for key in ("messages",) if key in columns] + (["tags"] if entry.get("tags") else [])
    alpaca_keys = [key for key in ("prompt", "query", "response", "history") if key in columns]
    if chat_keys and not alpaca_keys:
        raise UserError(f'{where}: has {" and ".join(chat_keys)}, which conversation data uses, but no "formatting", '
                        'so it would be read as alpaca (the default); add "formatting": "sharegpt" to the entry.')


def get_dataset_attr(name: str, info: dict[str, Any], dataset_dir: Path) -> DatasetAttr:
    """One name through the user's registry; a name it lacks but tunelab bundles (the anchor ships
    `identity` and the demo sets in its stock data/dataset_info.json) comes from the bundle, logged."""
    if name in info:
        return parse_entry(name, info[name], dataset_dir)
    bundled_dir = bundled_data_dir()
    entry = bundled_entry(name) if dataset_dir.resolve() != bundled_dir.resolve() else None
    if entry is None:
        raise unknown_dataset_error(name, info, dataset_dir)
    attr = parse_entry(name, entry, bundled_dir)
    log_once(logger, "data set %s: not in %s; using tunelab's bundled copy %s", name, dataset_dir / DATA_CONFIG,
             attr.path)
    return attr


def get_dataset_attrs(names: list[str], dataset_dir: Path) -> list[DatasetAttr]:
    """Resolve each name through `dataset_dir/dataset_info.json`; unknown names fail with close matches."""
    if not names:
        return []
    info = load_dataset_info(dataset_dir)
    return [get_dataset_attr(name, info, dataset_dir) for name in names]
