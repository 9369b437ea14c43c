"""Hostile input: random configs and random data rows end in a clean result or a UserError, never a crash.

Bounded for CI (`TUNELAB_FUZZ_EXAMPLES`, default 150 per target); run with a larger number locally.
"""

from __future__ import annotations

import json
import os
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab.config.groups import all_fields
from tunelab.config.parser import parse_config
from tunelab.errors import UserError

EXAMPLES = int(os.environ.get("TUNELAB_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

KNOWN_KEYS = sorted(all_fields())
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["true", "false", "none", "null", "1e-4", "3.e-5", "-1", "all", "lora", ""]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=15))


@FUZZ
@given(st.dictionaries(keys, values, max_size=8))
def test_config_files_never_crash(tmp_path_factory, mapping):
    path = tmp_path_factory.mktemp("cfg") / "cfg.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True))
    try:
        config = parse_config([str(path)])
    except UserError as error:
        assert str(error)  # a message, never empty
        return
    assert config.finetuning.stage in ("pt", "sft", "rm", "ppo", "dpo", "kto", "grpo")


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(KNOWN_KEYS).map(lambda k: f"--{k}"), st.text(max_size=12),
                          st.tuples(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)).map(lambda kv: f"{kv[0]}={kv[1]}")),
                max_size=8))
def test_command_lines_never_crash(argv):
    try:
        parse_config(argv)
    except UserError as error:
        assert str(error)


rows = st.lists(
    st.dictionaries(
        st.sampled_from(["instruction", "input", "output", "system", "history", "conversations", "messages",
                         "chosen", "rejected", "text", "from", "value"]),
        st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(["from", "value", "role",
                                                                                       "content"]), inner, max_size=3)),
                     max_leaves=6),
        max_size=5,
    ),
    max_size=6,
)


@pytest.mark.parametrize("formatting", ["alpaca", "sharegpt", "openai"])
def test_data_rows_never_crash(tmp_path_factory, formatting):
    from tunelab.config.data_args import DataArguments
    from tunelab.data.loader import load_datasets

    @FUZZ
    @given(rows, st.booleans())
    def check(data, as_jsonl):
        folder = tmp_path_factory.mktemp("data")
        name = "rows.jsonl" if as_jsonl else "rows.json"
        text = "\n".join(json.dumps(r) for r in data) if as_jsonl else json.dumps(data)
        (folder / name).write_text(text)
        entry = {"file_name": name, "formatting": formatting}
        if formatting == "openai":
            entry["columns"] = {"messages": "messages"}
        (folder / "dataset_info.json").write_text(json.dumps({"fuzz": entry}))
        try:
            loaded = load_datasets(["fuzz"], DataArguments(dataset="fuzz", dataset_dir=str(folder)), "sft")
        except UserError as error:
            assert str(error)
            return
        for part in loaded:
            assert len(part.examples) + part.invalid_rows <= max(part.rows, 1) or part.rows == 0
            for problem in part.problems:
                assert str(problem).startswith(str(folder / name))

    check()
