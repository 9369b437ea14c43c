"""docs/config.md is generated from the code; this fails when it is stale."""

from __future__ import annotations

import re

import transformers

from tunelab.config.reference import default_path, generate


def _sections(text: str) -> dict[str, str]:
    return dict(re.findall(r"^## (\w[\w ]*)\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M))


def test_config_reference_is_up_to_date():
    committed = default_path().read_text(encoding="utf-8")
    fresh = generate()
    if f"transformers {transformers.__version__}." in committed:
        assert committed == fresh, "docs/config.md is stale: run `python -m tunelab.config.reference`"
    else:  # another transformers release: its own keys may differ, tunelab's must not
        old, new = _sections(committed), _sections(fresh)
        for name in ("model", "data", "finetuning", "generating", "export", "evaluation"):
            assert old[name] == new[name], f"section {name} of docs/config.md is stale"


def test_every_key_is_documented():
    from tunelab.config.groups import all_fields

    text = default_path().read_text(encoding="utf-8")
    missing = [key for key in all_fields() if f"| `{key}` |" not in text]
    assert missing == []
