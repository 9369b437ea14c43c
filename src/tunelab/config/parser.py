"""From command-line arguments to a typed, validated `Config`, before any weight is loaded.

Order of work: read the sources (file, key=value, --key value), drop empty YAML values (the anchor
reads `key:` with nothing after it as "not set"), rename legacy keys and values, reject unknown or
unsupported keys with a suggestion, type every value against its field, fill the groups, derive the
values that depend on others (each logged once), then refuse contradictions. Every problem of the
key / type / contradiction kind is collected, so one run reports all of them.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from tunelab.config.coerce import coerce
from tunelab.config.derive import derive_values
from tunelab.config.groups import all_fields, group_classes
from tunelab.config.legacy import RENAMED_KEYS, renamed_value, unsupported_reason
from tunelab.config.ranges import capped_workers, range_problems
from tunelab.config.resolved import Config
from tunelab.config.sources import FLAG_WITHOUT_VALUE, RawValue, is_config_path, read_sources
from tunelab.config.validate import config_problems
from tunelab.errors import UserError, raise_problems

logger = logging.getLogger("tunelab.config")

_FALSY = (None, False, 0, "", "false", "False", "none", "None")


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f" Did you mean '{close[0]}'?"
    return " See docs/config.md (or `tunelab check --keys`) for every key."


def _shown(value: Any) -> str:
    """A raw value as the user would write it (a bare `--flag` is true), for log lines."""
    return "True" if value is FLAG_WITHOUT_VALUE else repr(value)


def _drop_empty(raw: dict[str, RawValue]) -> dict[str, RawValue]:
    """`key:` with no value in a YAML file means "not set" (the anchor's reading), for every key."""
    kept: dict[str, RawValue] = {}
    for key, value in raw.items():
        if value.value is None and value.origin != "command line":
            logger.info("%s: '%s' has no value; it is treated as not set (its default applies).", value.origin, key)
            continue
        kept[key] = value
    return kept


def _rename_legacy(raw: dict[str, RawValue]) -> dict[str, RawValue]:
    renamed: dict[str, RawValue] = {}
    for key, value in raw.items():
        new_key = RENAMED_KEYS.get(key)
        if new_key is None:
            renamed.setdefault(key, value)
            continue
        if key in raw and new_key in raw:
            raise UserError(f"{value.origin}: '{key}' and '{new_key}' are both set; '{key}' is the old name of '{new_key}', keep one.")
        logger.info("%s: '%s' is the old name of '%s'; using %s=%s.", value.origin, key, new_key, new_key,
                    _shown(value.value))
        renamed[new_key] = value
    for key, value in list(renamed.items()):
        new_value, changed = renamed_value(key, value.value)
        if changed:
            logger.info("%s: %s: %s is an older spelling; using %s: %s.", value.origin, key, _shown(value.value), key,
                        _shown(new_value))
            renamed[key] = RawValue(new_value, value.origin)
    return renamed


def read_config(argv: list[str]) -> tuple[Config, list[str]]:
    """The config and every key / type / contradiction problem found in it (not raised).

    A key that is unknown or has a wrong value is left out of the config, so the checks after it
    still run on the rest and one run reports everything (`tunelab check`)."""
    from tunelab.utils.logging import reset_log_once

    reset_log_once()
    raw = _rename_legacy(_drop_empty(read_sources(argv)))
    fields = all_fields()
    known = sorted(fields)
    typed: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        reason = unsupported_reason(key) if key not in fields else None
        if reason is not None:
            if value.value not in _FALSY:
                problems.append(f"{value.origin}: key '{key}': {reason}.")
            continue
        if key not in fields:
            problems.append(f"{value.origin}: unknown key '{key}'.{_suggest(key, known)}")
            continue
        try:
            typed[key] = coerce(key, value, fields[key][0].hint)
        except UserError as error:
            problems.append(error.message)
    out_of_range = range_problems(typed, {key: raw[key].origin for key in typed})
    problems += out_of_range.values()
    typed = {key: value for key, value in typed.items() if key not in out_of_range}  # refused: left out, as above
    capped = capped_workers(typed)
    typed |= {key: value for key, (value, _) in capped.items()}

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
    config.derived |= capped
    where = f"{first}: " if first else ""
    problems += [where + problem for problem in config_problems(config)]
    if not problems:  # a config that is refused says why, not what it would have derived
        for key, (value, why) in config.derived.items():
            logger.info("%s = %r (%s)", key, value, why)
    return config, problems


def parse_config(argv: list[str]) -> Config:
    """Parse and validate; every user mistake found raises one UserError naming each key and its fix."""
    config, problems = read_config(argv)
    raise_problems(problems)
    return config

