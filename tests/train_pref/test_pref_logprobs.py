"""Chunked log-probabilities equal the full-logits computation (values and gradients); the pair and
KTO collators lay rows out as the trainers expect."""

from __future__ import annotations

import pytest
import torch

from tunelab.data.labels import IGNORE_INDEX
from tunelab.train.collators import PairCollator
from tunelab.train.losses.logprobs import (
    forward_token_logps,
    sequence_logps,
    token_logps_from_hidden,
    token_logps_from_logits,
)
from tunelab.train.stages.kto import KTOCollator


def _labels(batch: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[:, :3] = IGNORE_INDEX  # prompts
    labels[1, -2:] = IGNORE_INDEX  # padding
    return labels


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_chunked_hidden_path_equals_full_logits(chunk):
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(3, 9, 16, requires_grad=True)
    labels = _labels(3, 9, 50)
    full, mask = token_logps_from_logits(head(hidden), labels)
    chunked, mask2 = token_logps_from_hidden(hidden, head, labels, chunk_tokens=chunk)
    assert torch.equal(mask, mask2)
    assert torch.allclose(full, chunked, atol=1e-6)
    (full.sum()).backward()
    grads = hidden.grad.clone(), head.weight.grad.clone()
    hidden.grad, head.weight.grad = None, None
    chunked.sum().backward()
    assert torch.allclose(grads[0], hidden.grad, atol=1e-6) and torch.allclose(grads[1], head.weight.grad, atol=1e-6)


def test_forward_token_logps_on_a_real_model_matches_cross_entropy():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    ids = torch.randint(0, 64, (2, 10))
    labels = ids.clone()
    labels[:, :4] = IGNORE_INDEX
    attention = torch.ones_like(ids)
    token_logps, mask = forward_token_logps(model, {"input_ids": ids, "attention_mask": attention, "labels": labels},
                                            chunk_tokens=3)
    sums, counts = sequence_logps(token_logps, mask)
    logits = model(input_ids=ids).logits[:, :-1]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 64), labels[:, 1:].reshape(-1), reduction="none")
    assert counts.tolist() == [6, 6]
    assert torch.allclose(sums, -ce.view(2, -1).sum(-1), atol=1e-5)


def test_pair_collator_stacks_chosen_then_rejected_in_one_batch():
    features = [
        {"chosen_input_ids": [1, 2, 3], "chosen_labels": [-100, 2, 3], "rejected_input_ids": [1, 4],
         "rejected_labels": [-100, 4], "ref_chosen_logps": -1.5, "ref_rejected_logps": -2.5},
        {"chosen_input_ids": [5, 6], "chosen_labels": [-100, 6], "rejected_input_ids": [5, 7, 8, 9],
         "rejected_labels": [-100, -100, 8, 9], "ref_chosen_logps": -3.0, "ref_rejected_logps": -4.0},
    ]
    batch = PairCollator(pad_token_id=0)(features)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0], [5, 6, 0, 0], [1, 4, 0, 0], [5, 7, 8, 9]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100], [-100, 6, -100, -100], [-100, 4, -100, -100],
                                        [-100, -100, 8, 9]]
    assert batch["attention_mask"].sum(-1).tolist() == [3, 2, 2, 4] and int(batch["num_tokens"]) == 11
    assert batch["ref_chosen_logps"].tolist() == [-1.5, -3.0] and batch["ref_rejected_logps"].tolist() == [-2.5, -4.0]


def test_kto_collator_pairs_each_prompt_with_the_previous_response():
    features = [
        {"input_ids": [1, 2, 10, 11], "labels": [-100, -100, 10, 11], "kto_tag": True},
        {"input_ids": [3, 20], "labels": [-100, 20], "kto_tag": False},
        {"input_ids": [4, 5, 6, 30, 31, 32], "labels": [-100, -100, -100, 30, 31, 32], "kto_tag": True},
    ]
    batch = KTOCollator(pad_token_id=0, cutoff_len=5)(features)
    assert batch["kto_tags"].tolist() == [True, False, True]
    kl = batch["input_ids"][3:].tolist()
    assert kl == [[1, 2, 30, 31, 32, 0], [3, 10, 11, 0, 0, 0], [4, 5, 6, 20, 0, 0]]  # x_i with y_{i-1}
    assert batch["labels"][3:].tolist()[1] == [-100, 10, 11, -100, -100, -100]
    assert int(batch["num_tokens"]) == 12  # the examples' tokens, not the KL rows'
