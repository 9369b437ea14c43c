"""Encoding in forked workers gives exactly the single-process rows, in order, and fails the same way."""

from __future__ import annotations

import pytest

from tunelab.data.cache import encode_examples
from tunelab.data.parallel_encode import encode_in_workers, fork_available
from tunelab.errors import UserError

pytestmark = pytest.mark.skipif(not fork_available(), reason="forked workers need the fork start method")


def encode(example: int) -> dict[str, list[int]] | None:
    if example % 7 == 3:
        return None  # dropped, as the encoder may do
    return {"input_ids": list(range(example % 5 + 1)), "labels": [example]}


def test_forked_workers_give_the_single_process_rows_in_order():
    examples = list(range(250))
    single = encode_examples(examples, encode, num_proc=1, batch_size=10)
    forked = encode_examples(examples, encode, num_proc=2, batch_size=10)
    assert forked.to_list() == single.to_list()
    assert [row["labels"][0] for row in forked] == [e for e in examples if e % 7 != 3]
    assert forked.features == single.features


def test_windows_cover_every_shard():
    shards = [list(range(i, i + 3)) for i in range(0, 90, 3)]  # 30 shards: several windows of 2 × 8
    rows = list(encode_in_workers(shards, encode, 2))
    assert [row["labels"][0] for row in rows] == [e for e in range(90) if e % 7 != 3]


def failing(example: int) -> dict[str, list[int]]:
    if example == 42:
        raise UserError("row 42: 'messages' is empty")
    return {"input_ids": [example]}


def test_a_users_error_in_a_worker_reaches_the_caller_unchanged():
    with pytest.raises(UserError, match="row 42: 'messages' is empty"):
        encode_examples(list(range(100)), failing, num_proc=2, batch_size=10)


def test_a_users_error_in_one_process_reaches_the_caller_unchanged():
    with pytest.raises(UserError, match="row 42: 'messages' is empty"):
        encode_examples(list(range(100)), failing, num_proc=1, batch_size=10)
