"""Selection and mixing as the anchor does them: max_samples, num_samples, mix strategies, val_size."""

from __future__ import annotations

import json

import pytest
from _datafiles import register

from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_splits
from tunelab.data.mixing import mix, split_validation, take_samples, val_count
from tunelab.errors import UserError

A = [f"a{i}" for i in range(6)]
B = [f"b{i}" for i in range(2)]


def test_concat_keeps_order():
    assert mix([A, B]) == A + B


def test_interleave_under_stops_at_the_first_exhausted():
    assert mix([A, B], "interleave_under") == ["a0", "b0", "a1", "b1"]


def test_interleave_over_runs_until_all_exhausted_with_repeats():
    out = mix([A, B], "interleave_over")
    assert out == ["a0", "b0", "a1", "b1", "a2", "b0", "a3", "b1", "a4", "b0", "a5", "b1"]


def test_interleave_once_uses_each_example_once():
    out = mix([A, B], "interleave_once")
    assert sorted(out) == sorted(A + B) and out[:4] == ["a0", "b0", "a1", "b1"]


def test_interleave_probs_are_seeded_and_checked():
    first = mix([A, B], "interleave_under", [0.8, 0.2], seed=1)
    assert first == mix([A, B], "interleave_under", [0.8, 0.2], seed=1)
    assert set(first) <= set(A + B)
    with pytest.raises(UserError, match="2 values for 3 data sets"):
        mix([A, B, A], "interleave_under", [0.5, 0.5])
    with pytest.raises(UserError, match="sum to 1"):
        mix([A, B], "interleave_under", [0.5, 0.6])


def test_val_size_fraction_and_count():
    assert val_count(0.1, 95) == 10  # ceil, as datasets' train_test_split
    assert val_count(3, 95) == 3
    train, evaluation = split_validation(list(range(20)), 0.25, seed=0)
    assert len(train) == 15 and len(evaluation) == 5 and sorted(train + evaluation) == list(range(20))
    assert split_validation(list(range(20)), 0.25, seed=0) == (train, evaluation)
    with pytest.raises(UserError, match="leaves none to train on"):
        val_count(20, 20)


def test_num_samples_subsamples_or_repeats():
    assert sorted(take_samples(A, 3, seed=0)) != [] and len(set(take_samples(A, 3, seed=0))) == 3
    more = take_samples(B, 5, seed=0)
    assert len(more) == 5 and set(more) == set(B)


def test_loader_applies_max_samples_num_samples_and_mix(data_dir):
    rows_a = [{"instruction": f"a{i}", "output": "x"} for i in range(10)]
    rows_b = [{"instruction": f"b{i}", "output": "y"} for i in range(10)]
    (data_dir / "a.json").write_text(json.dumps(rows_a))
    (data_dir / "b.json").write_text(json.dumps(rows_b))
    register(data_dir, {"a": {"file_name": "a.json"}, "b": {"file_name": "b.json", "num_samples": 4}})
    args = DataArguments(dataset="a,b", dataset_dir=str(data_dir), max_samples=3)
    train = load_splits(args, "sft").train
    prompts = [e.messages[0].content for e in train]
    assert prompts[:3] == ["a0", "a1", "a2"] and len(prompts) == 6 and all(p.startswith("b") for p in prompts[3:])

    args = DataArguments(dataset="a", eval_dataset="b", dataset_dir=str(data_dir), val_size=0.1)
    with pytest.raises(UserError, match="either val_size or eval_dataset"):
        load_splits(args, "sft")
    args = DataArguments(dataset="a", dataset_dir=str(data_dir), val_size=2)
    splits = load_splits(args, "sft")
    assert (len(splits.train), len(splits.eval)) == (8, 2)
