"""docs/architecture.md's folder map names every module of src/tunelab, and names none that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tunelab"


def folder_map() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Folder map", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines() if line.strip()]


def named_modules(lines: list[str]) -> set[str]:
    """Module paths the map names: `pkg/mod.py` tokens, and bare `mod.py` tokens on a `pkg/...` line."""
    named: set[str] = set()
    for line in lines:
        tokens = re.findall(r"[\w/<>]+\.py", line)
        folder = next((t.rsplit("/", 1)[0] for t in tokens if "/" in t), "")
        for token in tokens:
            named.add(token if "/" in token or not folder else f"{folder}/{token}")
    return named


def test_the_map_names_every_module():
    named = named_modules(folder_map())
    pattern_commands = "cli/cmd_<command>.py" in named
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" and rel != "train/stages/__init__.py":
            continue
        if rel.startswith("cli/cmd_") and pattern_commands:
            continue
        if rel not in named:
            missing.append(rel)
    assert missing == [], f"docs/architecture.md's folder map does not name: {missing}"


def test_the_map_names_no_module_that_is_gone():
    gone = [rel for rel in named_modules(folder_map()) if "<" not in rel and not (PACKAGE / rel).is_file()]
    assert gone == [], f"docs/architecture.md names modules that do not exist: {gone}"
