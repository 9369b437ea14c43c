"""Command options that are not config keys (`--system`, `--prompt`), taken out of argv before the
rest goes to the config parser, so the parser never mistakes them for unknown keys."""

from __future__ import annotations

from tunelab.errors import UserError


def pop_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Take `--name VALUE` / `--name=VALUE` out of argv; return the rest and the value (None if absent)."""
    rest: list[str] = []
    value: str | None = None
    items = iter(argv)
    for item in items:
        if item == name:
            value = next(items, None)
            if value is None:
                raise UserError(f"{name} needs a value")
        elif item.startswith(name + "="):
            value = item[len(name) + 1 :]
        else:
            rest.append(item)
    return rest, value
