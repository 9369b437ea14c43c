"""A packed row computes exactly what its examples compute one by one: the same per-example losses
and the same gradients (sdpa and eager attention, on CPU)."""

from __future__ import annotations

import pytest
import torch

from tunelab.train.collators import PackedCollator, PaddingCollator
from tunelab.train.packing import pack_examples


def examples() -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for length, prompt in ((9, 3), (14, 5), (6, 2)):
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
    batch = PackedCollator(pad_token_id=0, mask_dtype=torch.float32)(rows)
    assert batch["position_ids"][0].tolist() == list(range(14)) + list(range(9)) + list(range(6))
    model.zero_grad()
    packed = summed_loss(model, batch)
    packed.backward()

    assert packed.item() == pytest.approx(unpacked.item(), rel=1e-5)
    with torch.no_grad():  # and example by example: split the packed row's token losses at the boundaries
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       attention_mask=batch["attention_mask"]).logits[0, :-1]
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
