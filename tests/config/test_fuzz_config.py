"""A CI-sized sample of the config fuzzer (tests/config/fuzz_config.py): no traceback, no hang, no
out-of-range value accepted. TUNELAB_FUZZ_EXAMPLES sets the sample size (default 40)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fuzz_config  # noqa: E402

EXAMPLES = int(os.environ.get("TUNELAB_FUZZ_EXAMPLES", "40"))


def test_the_seed_configs_pass_check_portable():
    """The mutations mean something only if the unmutated seeds are accepted."""
    seeds = [fuzz_config.Mutation(f"seed {name}", name, text.encode()) for name, text in fuzz_config.SEEDS.items()]
    assert [outcome.kind for outcome in fuzz_config.run_campaign(seeds)] == ["accepted"] * len(seeds)


def test_a_sample_of_mutations_ends_in_a_result_or_one_clear_message():
    started = time.perf_counter()
    outcomes = fuzz_config.run_campaign(fuzz_config.sample(EXAMPLES, seed=int(os.environ.get("TUNELAB_FUZZ_SEED", "0"))))
    report = fuzz_config.summary(outcomes)
    assert not [outcome for outcome in outcomes if outcome.failed], report
    assert len(outcomes) == min(EXAMPLES, len(fuzz_config.all_mutations()))
    assert time.perf_counter() - started < 25 + EXAMPLES * fuzz_config.CASE_SECONDS / 10


def test_the_campaign_covers_every_numeric_key_and_every_kind_of_mutation():
    cases = fuzz_config.all_mutations()
    names = {case.name for case in cases}
    for key in fuzz_config.numeric_keys():
        for value in ("0", "-1", ".inf", ".nan", "1e308", "9" * 20):
            assert f"{key}: {value}" in names
    for kind in ("billion laughs", "recursive alias", "latin-1 byte", "utf-16 file", "json huge int",
                 "duplicate learning_rate", "unknown key lerning_rate"):
        assert kind in names
    assert sum(case.must_name is not None for case in cases) > 1000
