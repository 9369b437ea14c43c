"""The batching rules of `tunelab.data.batching`, value by value: padding, best-fit packing, the first
label of every packed example, restarting position ids, padding-free rows and their sequence index.

Pure unit tests on hand-made ids (no tokenizer, no model): they run in well under a second and are
the tests scripts/mutation.sh runs the module's mutants against (docs/testing.md).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tunelab.data.batching import (
    SEQUENCE_INDEX_KEY,
    TOKEN_COUNT_KEY,
    assemble_rows,
    chunk_tokens,
    pack_batch,
    pack_examples,
    pack_indices,
    pack_sequences,
    packed_batch,
    pad_left,
    pad_right,
    split_packed_rows,
    uses_varlen_attention,
)

X = -100
PAD = 7


def example(ids: list[int], prompt: int = 0) -> dict[str, list[int]]:
    """An encoded example whose first `prompt` tokens are masked (prompt=0: every token trained)."""
    return {"input_ids": list(ids), "labels": [X] * prompt + list(ids[prompt:])}


# -- padding ------------------------------------------------------------------------------------------


def test_pad_right_puts_each_sequence_at_column_zero_and_masks_the_padding():
    batch = pad_right([([11, 12, 13], [X, 12, 13]), ([21], None)], pad_token_id=PAD)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[11, 12, 13], [21, PAD, PAD]]
    assert batch["labels"].tolist() == [[X, 12, 13], [21, X, X]]  # labels None: every token is its own label
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())


@pytest.mark.parametrize(("multiple", "width"), [(None, 5), (4, 8), (5, 5), (8, 8), (1, 5)])
def test_pad_right_rounds_the_width_up_to_the_multiple(multiple, width):
    batch = pad_right([([1, 2, 3, 4, 5], None), ([6, 7], [X, 7])], pad_token_id=0, pad_to_multiple_of=multiple)
    assert batch["input_ids"].shape == (2, width)
    assert batch["input_ids"][0].tolist() == [1, 2, 3, 4, 5] + [0] * (width - 5)
    assert batch["labels"][1].tolist() == [X, 7] + [X] * (width - 2)
    assert batch["attention_mask"].sum(-1).tolist() == [5, 2]


def test_pad_left_ends_every_prompt_in_the_last_column():
    ids, mask = pad_left([[1, 2, 3], [4], []], pad_token_id=PAD)
    assert ids.tolist() == [[1, 2, 3], [PAD, PAD, 4], [PAD, PAD, PAD]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert ids.dtype == mask.dtype == torch.long


# -- packing ------------------------------------------------------------------------------------------


def test_chunk_tokens_splits_a_long_text_without_dropping_a_token():
    assert chunk_tokens(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunk_tokens(list(range(6)), 3) == [[0, 1, 2], [3, 4, 5]]
    assert chunk_tokens([5], 4) == [[5]]
    assert chunk_tokens([], 4) == []


def test_pack_indices_is_best_fit_longest_first():
    # longest first: 6 -> row 0 (free 4); 5 -> row 1 (free 5); 4 -> row 0, the tightest row it fits (exactly)
    assert pack_indices([6, 5, 4], 10) == [[0, 2], [1]]
    # 3 fits row 0 (free 4) and row 1 (free 5): best fit is the tighter row 0
    assert pack_indices([6, 5, 3], 10) == [[0, 2], [1]]
    assert pack_indices([5, 5, 2], 10) == [[0, 1], [2]]
    # rows 0 and 1 both have 2 free: the earlier row wins
    assert pack_indices([5, 5, 2], 7) == [[0, 2], [1]]


def test_pack_indices_orders_by_length_and_keeps_ties_in_input_order():
    assert pack_indices([2, 9, 4], 9) == [[1], [2, 0]]
    assert pack_indices([3, 3, 3], 3) == [[0], [1], [2]]
    assert pack_indices([1, 1, 1], 3) == [[0, 1, 2]]


def test_pack_indices_fills_a_row_exactly_to_the_cutoff_and_refuses_a_longer_example():
    assert pack_indices([4, 4], 8) == [[0, 1]]
    assert pack_indices([8], 8) == [[0]]
    assert pack_indices([], 8) == []
    with pytest.raises(ValueError, match="^example of 9 tokens is longer than cutoff_len=8$"):
        pack_indices([3, 9], 8)


def test_the_first_label_of_every_packed_example_is_ignored_even_without_a_prompt():
    """The rule mutation testing found unguarded (issue #20): examples that train every token (pre-training
    text, train_on_prompt) must not make their first token a target predicted from the previous example."""
    rows = assemble_rows([example([11, 12, 13]), example([21, 22]), example([31, 32, 33, 34], prompt=2)],
                         [[0, 1], [2]])
    assert rows == [
        {"input_ids": [11, 12, 13, 21, 22], "labels": [X, 12, 13, X, 22], "segment_lengths": [3, 2]},
        {"input_ids": [31, 32, 33, 34], "labels": [X, X, 33, 34], "segment_lengths": [4]},
    ]


def test_assemble_rows_follows_the_order_of_each_group():
    rows = assemble_rows([example([1]), example([2, 3]), example([4, 5, 6])], [[2, 0], [1]])
    assert [r["input_ids"] for r in rows] == [[4, 5, 6, 1], [2, 3]]
    assert [r["labels"] for r in rows] == [[X, 5, 6, X], [X, 3]]
    assert [r["segment_lengths"] for r in rows] == [[3, 1], [2]]


def test_pack_examples_packs_the_examples_in_best_fit_rows():
    data = [example([1, 2, 3]), example([4, 5, 6, 7, 8]), example([9, 10])]
    rows = pack_examples(data, cutoff_len=6)
    assert rows == [
        {"input_ids": [4, 5, 6, 7, 8], "labels": [X, 5, 6, 7, 8], "segment_lengths": [5]},
        {"input_ids": [1, 2, 3, 9, 10], "labels": [X, 2, 3, X, 10], "segment_lengths": [3, 2]},
    ]


def test_packed_batch_restarts_positions_at_every_example_and_pads_the_rest():
    rows = [{"input_ids": [1, 2, 3, 4, 5], "labels": [X, 2, 3, X, 5], "segment_lengths": [3, 2]},
            {"input_ids": [6, 7], "labels": [X, 7], "segment_lengths": [2]}]
    batch = packed_batch(rows, pad_token_id=PAD)
    assert set(batch) == {"input_ids", "labels", "position_ids", TOKEN_COUNT_KEY, "use_cache"}
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, PAD, PAD, PAD]]
    assert batch["labels"].tolist() == [[X, 2, 3, X, 5], [X, 7, X, X, X]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 0, 0]]  # padding: a sequence per token
    assert batch[TOKEN_COUNT_KEY].item() == 7
    assert batch["use_cache"] is False  # transformers finds packed sequences only without a KV cache
    assert all(batch[k].dtype == torch.long for k in ("input_ids", "labels", "position_ids"))
    assert "attention_mask" not in batch


def test_split_packed_rows_gives_back_each_example():
    rows = [{"input_ids": [1, 2, 3, 4, 5, 8, 9], "labels": [X, 2, 3, X, 5, X, 9], "segment_lengths": [3, 2, 2]},
            {"input_ids": [6, 7], "labels": [X, 7], "segment_lengths": [2]}]
    assert split_packed_rows(rows) == [
        {"input_ids": [1, 2, 3], "labels": [X, 2, 3]},
        {"input_ids": [4, 5], "labels": [X, 5]},
        {"input_ids": [8, 9], "labels": [X, 9]},
        {"input_ids": [6, 7], "labels": [X, 7]},
    ]


# -- padding-free batches -----------------------------------------------------------------------------


def padding_free_rows() -> list[dict[str, list[int]]]:
    return [example([1, 2, 3, 4], prompt=1), example([5, 6]), example([7, 8, 9]), example([10])]


def test_pack_batch_rows_hold_at_most_the_longest_sequence():
    batch, groups = pack_batch(padding_free_rows(), pad_token_id=PAD)
    assert groups == [[0], [2, 3], [1]]  # longest 4: 4 | 3+1 | 2
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [7, 8, 9, 10], [5, 6, PAD, PAD]]
    assert batch["labels"].tolist() == [[X, 2, 3, 4], [X, 8, 9, X], [X, 6, X, X]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 0, 0]]
    assert batch[TOKEN_COUNT_KEY].item() == 10


def test_pack_batch_with_varlen_attention_is_one_row():
    batch, groups = pack_batch(padding_free_rows(), pad_token_id=PAD, varlen_attention=True)
    assert groups == [[0, 2, 1, 3]]
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 7, 8, 9, 5, 6, 10]]
    assert batch["labels"].tolist() == [[X, 2, 3, 4, X, 8, 9, X, 6, X]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1, 0]]


def test_pack_sequences_names_each_tokens_sequence():
    rows = [([1, 2, 3, 4], [X, 2, 3, 4]), ([5, 6], [5, 6]), ([7, 8, 9], [X, X, 9])]
    batch = pack_sequences(rows, pad_token_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [7, 8, 9, PAD], [5, 6, PAD, PAD]]
    assert batch["labels"].tolist() == [[X, 2, 3, 4], [X, X, 9, X], [X, 6, X, X]]
    assert batch[SEQUENCE_INDEX_KEY].tolist() == [[0, 0, 0, 0], [2, 2, 2, -1], [1, 1, -1, -1]]
    assert batch[SEQUENCE_INDEX_KEY].dtype == torch.long
    one_row = pack_sequences(rows, pad_token_id=PAD, varlen_attention=True)
    assert one_row[SEQUENCE_INDEX_KEY].tolist() == [[0, 0, 0, 0, 2, 2, 2, 1, 1]]
    assert one_row["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1]]


@pytest.mark.parametrize("rows", [[([1, 2], [1])], [([1], [1]), ([], [])], [([1, 2], [1, 2, 3])]])
def test_pack_sequences_refuses_labels_that_do_not_match_the_tokens(rows):
    with pytest.raises(ValueError, match="^every sequence needs as many labels as tokens, and at least one token$"):
        pack_sequences(rows, pad_token_id=PAD)


@pytest.mark.parametrize(("implementation", "varlen"), [("flash_attention_2", True), ("flash_attention_3", True),
                                                        ("sdpa", False), ("eager", False), (None, False)])
def test_varlen_attention_is_flash_attention(implementation, varlen):
    config = SimpleNamespace() if implementation is None else SimpleNamespace(_attn_implementation=implementation)
    assert uses_varlen_attention(SimpleNamespace(config=config)) is varlen
