"""Hostile data files (issue #24, point 9): a seeded sample of malformed files run through `tunelab data check`
in process ends in exit 0, 1 or 2, never a traceback or a hang, and a file whose rows are all valid is read
back whole. `TUNELAB_FUZZ_EXAMPLES` sets the sample (default 40, every kind at least twice); the full
campaign is `python tests/data/fuzz_files.py 280` (counts in docs/reliability.md)."""

from __future__ import annotations

import os

import pytest
from fuzz_files import KINDS, generate, run_case, silently_dropped

EXAMPLES = int(os.environ.get("TUNELAB_FUZZ_EXAMPLES", "40"))
CASES = list(generate(EXAMPLES))
# kinds whose every file is broken by construction: they must be reported, not pass
ALWAYS_A_PROBLEM = {"legacy_encoding", "deep_nesting", "lone_surrogate", "empty", "nul_bytes"}


def test_the_sample_holds_every_kind():
    assert EXAMPLES < len(KINDS) or {case.kind for case in CASES} == set(KINDS)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_file_ends_cleanly(case, tmp_path):
    outcome = run_case(case, tmp_path / "ds")
    assert outcome.result in ("exit 0", "exit 1", "exit 2"), f"{case.name}: {outcome.result}\n{outcome.detail}"
    assert "Traceback" not in outcome.detail
    assert not silently_dropped(outcome), (
        f"{case.name}: wrote {case.valid_rows} valid rows, the check read {outcome.rows} ({outcome.valid} valid), "
        f"{outcome.result}\n{outcome.detail}"
    )
    if case.kind in ALWAYS_A_PROBLEM:
        assert outcome.result == "exit 1", outcome.detail
