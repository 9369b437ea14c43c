"""From command-line arguments to a typed, validated `Config`, before any weight is loaded.

Order of work: read the sources (file, key=value, --key value), rename legacy keys, reject unknown
or unsupported keys with a suggestion, type every value against its field, fill the groups,
derive the values that depend on others (each logged once), then refuse contradictions.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from tunelab.config.coerce import coerce
from tunelab.config.derive import derive_values
from tunelab.config.groups import all_fields, group_classes
from tunelab.config.legacy import RENAMED_KEYS, unsupported_reason
from tunelab.config.resolved import Config
from tunelab.config.sources import RawValue, is_config_path, read_sources
from tunelab.config.validate import validate_config
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.config")

_FALSY = (None, False, 0, "", "false", "False", "none", "None")


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f" Did you mean '{close[0]}'?"
    return " See docs/config.md (or `tunelab check --keys`) for every key."


def _rename_legacy(raw: dict[str, RawValue]) -> dict[str, RawValue]:
    renamed: dict[str, RawValue] = {}
    for key, value in raw.items():
        new_key = RENAMED_KEYS.get(key)
        if new_key is None:
            renamed.setdefault(key, value)
            continue
        if key in raw and new_key in raw:
            raise UserError(f"{value.origin}: '{key}' and '{new_key}' are both set; '{key}' is the old name of '{new_key}', keep one.")
        logger.info("%s: '%s' is the old name of '%s'; using %s=%r.", value.origin, key, new_key, new_key, value.value)
        renamed[new_key] = value
    return renamed


def parse_config(argv: list[str]) -> Config:
    """Parse and validate; every user mistake raises a UserError naming the key and the fix."""
    raw = _rename_legacy(read_sources(argv))
    fields = all_fields()
    known = sorted(fields)
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        reason = unsupported_reason(key) if key not in fields else None
        if reason is not None:
            if value.value in _FALSY:
                continue
            raise UserError(f"{value.origin}: key '{key}': {reason}.")
        if key not in fields:
            raise UserError(f"{value.origin}: unknown key '{key}'.{_suggest(key, known)}")
        typed[key] = coerce(key, value, fields[key][0].hint)

    per_group: dict[str, dict[str, Any]] = {name: {} for name in group_classes()}
    for key, value in typed.items():
        for declaration in fields[key]:
            per_group[declaration.group][key] = value

    classes = group_classes()
    groups = {name: classes[name](**values) for name, values in per_group.items() if name != "training"}
    first = argv[0] if argv and is_config_path(argv[0]) else None
    config = Config(
        model=groups["model"],
        data=groups["data"],
        finetuning=groups["finetuning"],
        generating=groups["generating"],
        export=groups["export"],
        evaluation=groups["evaluation"],
        training_values=per_group["training"],
        explicit=typed,
        source_file=first,
    )
    derive_values(config)
    validate_config(config)
    for key, (value, why) in config.derived.items():
        logger.info("%s = %r (%s)", key, value, why)
    return config
