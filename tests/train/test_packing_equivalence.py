"""A packed row computes exactly what its examples compute one by one: the same per-example losses
and the same gradients (sdpa and eager attention, on CPU)."""

from __future__ import annotations

import pytest
import torch

from tunelab.data.batching import pack_examples
from tunelab.train.stages.lm import PackedCollator, PaddingCollator


def examples(shapes=((9, 3), (14, 5), (6, 2))) -> list[dict[str, list[int]]]:
    """Examples of the given (length, prompt length) shapes."""
    g = torch.Generator().manual_seed(0)
    out = []
    for length, prompt in shapes:
        ids = torch.randint(10, 5000, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def summed_loss(model, batch) -> torch.Tensor:
    logits = model(**{k: v for k, v in batch.items() if k != "labels" and k != "num_tokens"}).logits.float()
    shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_losses_and_gradients_equal_unpacked(tiny_qwen, attention):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, attn_implementation=attention, dtype=torch.float32)
    data = examples()

    model.zero_grad()
    unpacked = sum(summed_loss(model, PaddingCollator(pad_token_id=0)([e])) for e in data)
    unpacked.backward()
    expected_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    rows = pack_examples(data, cutoff_len=64)
    assert len(rows) == 1 and rows[0]["segment_lengths"] == [14, 9, 6]
    batch = PackedCollator(pad_token_id=0)(rows)
    assert batch["position_ids"][0].tolist() == list(range(14)) + list(range(9)) + list(range(6))
    model.zero_grad()
    packed = summed_loss(model, batch)
    packed.backward()

    assert packed.item() == pytest.approx(unpacked.item(), rel=1e-5)
    with torch.no_grad():  # and example by example: split the packed row's token losses at the boundaries
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       use_cache=False).logits[0, :-1]
        token_losses = torch.nn.functional.cross_entropy(logits, batch["labels"][0, 1:], ignore_index=-100,
                                                         reduction="none")
        by_length = {len(e["input_ids"]): e for e in data}
        start = 0
        for length in rows[0]["segment_lengths"]:
            alone = summed_loss(model, PaddingCollator(pad_token_id=0)([by_length[length]]))
            assert token_losses[start : start + length - 1].sum().item() == pytest.approx(alone.item(), rel=1e-5)
            start += length
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_packed_rows_never_exceed_cutoff_and_keep_every_token():
    data = examples() * 5
    rows = pack_examples(data, cutoff_len=20)
    assert all(len(r["input_ids"]) <= 20 for r in rows)
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(e["input_ids"]) for e in data)
    assert sorted(n for r in rows for n in r["segment_lengths"]) == sorted(len(e["input_ids"]) for e in data)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_padding_free_batch_equals_the_padded_batch(tiny_qwen, attention):
    """A padding-free batch holds the same examples as the padded one and gives the same summed loss and
    gradients, in fewer token slots; rows never exceed the batch's longest example (sdpa / eager)."""
    from transformers import AutoModelForCausalLM

    from tunelab.train.stages.lm import PaddingFreeCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, attn_implementation=attention, dtype=torch.float32)
    data = examples(((9, 3), (14, 5), (6, 2), (5, 2), (3, 1)))  # best fit in rows of 14: 14 | 9+5 | 6+3

    padded = PaddingCollator(pad_token_id=0)(data)
    model.zero_grad()
    expected = summed_loss(model, padded)
    expected.backward()
    expected_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    batch = PaddingFreeCollator(pad_token_id=0)(data)
    assert batch["input_ids"].shape == (3, 14) and padded["input_ids"].shape == (5, 14)
    assert batch["num_tokens"].item() == padded["num_tokens"].item() == 37
    assert (batch["labels"][:, 1:] != -100).sum() == (padded["labels"][:, 1:] != -100).sum()
    model.zero_grad()
    got = summed_loss(model, batch)
    got.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_padding_free_with_varlen_attention_is_one_row_without_a_mask():
    from tunelab.train.stages.lm import PaddingFreeCollator

    batch = PaddingFreeCollator(pad_token_id=0, varlen_attention=True)(examples())
    assert batch["input_ids"].shape == (1, 29) and "attention_mask" not in batch
    assert batch["position_ids"][0].tolist() == list(range(14)) + list(range(9)) + list(range(6))
