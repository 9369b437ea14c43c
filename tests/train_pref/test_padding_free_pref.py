"""Padding-free preference batches (rm, dpo, kto) compute exactly what padded batches compute: the same
per-sequence log-probs and rewards, the same loss and the same gradients (tiny Qwen2, sdpa, CPU).

A padding-free batch packs all its sequences into rows no longer than the longest one (one row with
flash-attention), with per-sequence position ids, a block-diagonal causal mask and `sequence_index`;
the trainers read per-sequence values back in the padded layout, so the loss code is shared.
"""

from __future__ import annotations

import pytest
import torch

from tunelab.data.batching import SEQUENCE_INDEX_KEY
from tunelab.train.collators import PairCollator
from tunelab.train.losses.logprobs import sequence_token_logps
from tunelab.train.stages.kto import KL_PREFIX, KTOCollator

PROMPTS = ((3, 9, 5), (5, 14, 7), (2, 6, 4), (4, 5, 11))  # (prompt length, chosen length, rejected length)


def _ids(generator: torch.Generator, n: int) -> list[int]:
    return torch.randint(10, 5000, (n,), generator=generator).tolist()


def pair_features(shapes=PROMPTS) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for prompt_len, chosen_len, rejected_len in shapes:
        prompt = _ids(g, prompt_len)
        chosen, rejected = prompt + _ids(g, chosen_len - prompt_len), prompt + _ids(g, rejected_len - prompt_len)
        out.append({"chosen_input_ids": chosen, "chosen_labels": [-100] * prompt_len + chosen[prompt_len:],
                    "rejected_input_ids": rejected, "rejected_labels": [-100] * prompt_len + rejected[prompt_len:]})
    return out


def kto_features() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for index, (prompt_len, length) in enumerate(((3, 9), (5, 14), (2, 6), (4, 11), (6, 8))):
        ids = _ids(g, length)
        out.append({"input_ids": ids, "labels": [-100] * prompt_len + ids[prompt_len:], "kto_tag": index % 2 == 0})
    return out


@pytest.fixture(scope="module")
def model_path(tiny_qwen):
    return tiny_qwen


def load(path, attention: str = "sdpa"):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention, dtype=torch.float32)


def both(collator_type, features, **kwargs) -> tuple[dict, dict]:
    padded = collator_type(pad_token_id=0, **kwargs)(features)
    free = collator_type(pad_token_id=0, padding_free=True, **kwargs)(features)
    return padded, free


def perturb(model, seed: int = 0) -> None:
    """Move the policy away from its reference (a frozen copy taken at construction)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=g) * 0.02)


def trainer_for(trainer_type, model, stage: str, tmp_path, **keys):
    from transformers import Seq2SeqTrainingArguments

    from tunelab.config.parser import parse_config

    args = ["--stage", stage, "--finetuning_type", "full", *[f"--{k}={v}" for k, v in keys.items()]]
    config = parse_config(args)
    training = Seq2SeqTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    trainer = trainer_type(model=model, args=training, config=config, train_dataset=[{"x": 0}])
    trainer.model.train()  # as in a training step (the tiny model has no dropout)
    return trainer


def loss_and_grads(trainer, batch: dict) -> tuple[torch.Tensor, dict, dict]:
    batch = {k: v for k, v in batch.items() if k != "num_tokens"}
    trainer.model.zero_grad()
    loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), outputs, grads


def assert_same_grads(got: dict, want: dict) -> None:
    assert got.keys() == want.keys() and want
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


# -- layout ----------------------------------------------------------------------------------------------


def test_padding_free_pair_batch_packs_every_sequence_in_order():
    features = pair_features()
    padded, free = both(PairCollator, features)
    lengths = padded["attention_mask"].sum(-1).tolist()  # chosen 9 14 6 5, rejected 5 7 4 11
    assert free["input_ids"].shape[1] == max(lengths) == 14 and free["input_ids"].shape[0] < padded["input_ids"].shape[0]
    assert free["num_tokens"].item() == padded["num_tokens"].item() == sum(lengths)
    index = free[SEQUENCE_INDEX_KEY]
    for sequence, length in enumerate(lengths):  # each sequence's tokens, in one piece, in order
        where = (index == sequence).nonzero()
        row = where[0, 0]
        assert len(where) == length and (where[:, 0] == row).all()
        columns = where[:, 1]
        assert free["input_ids"][row, columns].tolist() == padded["input_ids"][sequence, :length].tolist()
        assert free["position_ids"][row, columns].tolist() == list(range(length))
        assert free["labels"][row, columns].tolist() == [-100] + padded["labels"][sequence, 1:length].tolist()
    assert int((index >= 0).sum()) == sum(lengths)
    # no mask: transformers derives each layer's mask from the restarting position ids (without a KV cache)
    assert "attention_mask" not in free and free["use_cache"] is False


def test_padding_free_with_varlen_attention_is_one_row_without_a_mask():
    free = PairCollator(pad_token_id=0, padding_free=True, varlen_attention=True)(pair_features())
    assert free["input_ids"].shape == (1, 61) and "attention_mask" not in free
    assert (free[SEQUENCE_INDEX_KEY] >= 0).all()


def test_pairs_are_padded_for_a_model_that_would_leak_across_packed_sequences(caplog):
    """Qwen3.5's linear-attention layers carry a state along the row: its pair batches are padded, said once."""
    import logging
    from types import SimpleNamespace

    from transformers import AutoConfig, AutoModelForCausalLM

    from tunelab.train.collators import pair_layout

    config = AutoConfig.for_model("qwen3_5_text", vocab_size=64, hidden_size=16, intermediate_size=32,
                                  num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    model = AutoModelForCausalLM.from_config(config)
    run = SimpleNamespace(data=SimpleNamespace(padding_free=True))
    with caplog.at_level(logging.WARNING, logger="tunelab.model"):
        layout = pair_layout(SimpleNamespace(pad_token_id=0), model, run)
    assert layout["padding_free"] is False
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == ["qwen3_5_text"]
    batch = PairCollator(**layout)(pair_features())
    assert SEQUENCE_INDEX_KEY not in batch and batch["input_ids"].shape[0] == 2 * len(pair_features())


def test_padding_free_kto_batch_packs_examples_and_kl_sequences_apart():
    padded, free = both(KTOCollator, kto_features(), cutoff_len=64)
    count = 5
    assert free["num_tokens"].item() == padded["num_tokens"].item() == 48  # the examples' tokens only
    assert int((free[SEQUENCE_INDEX_KEY] >= 0).sum()) == int(padded["attention_mask"][:count].sum())
    assert int((free[KL_PREFIX + SEQUENCE_INDEX_KEY] >= 0).sum()) == int(padded["attention_mask"][count:].sum())
    assert free["kto_tags"].tolist() == padded["kto_tags"].tolist()
    assert KL_PREFIX + "position_ids" in free and KL_PREFIX + "attention_mask" not in free


# -- per-sequence log-probs ---------------------------------------------------------------------------


def test_per_sequence_log_probs_equal_the_padded_ones(model_path):
    model = load(model_path).eval()
    padded, free = both(PairCollator, pair_features())
    with torch.no_grad():
        want, want_mask = sequence_token_logps(model, padded, chunk_tokens=7)
        got, got_mask = sequence_token_logps(model, free, chunk_tokens=7)
    assert got.shape == want.shape and torch.equal(got_mask, want_mask)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_one_row_layout_gives_the_same_log_probs_and_last_tokens(model_path):
    """The flash-attention layout (all sequences in one row, no mask) read back by sequence. Run here with
    sdpa, which transformers also confines to each sequence when a mask-less row's position ids restart."""
    from tunelab.train.losses.logprobs import (
        forward_hidden,
        forward_token_logps,
        last_token_states,
        per_sequence_token_logps,
    )

    model = load(model_path).eval()
    padded = PairCollator(pad_token_id=0)(pair_features())
    row = PairCollator(pad_token_id=0, padding_free=True, varlen_attention=True)(pair_features())
    with torch.no_grad():
        want, want_mask = forward_token_logps(model, padded)
        got, got_mask = per_sequence_token_logps(*forward_token_logps(model, row), row[SEQUENCE_INDEX_KEY])
        want_last = last_token_states(forward_hidden(model, padded), padded)
        got_last = last_token_states(forward_hidden(model, row), row)
    assert torch.equal(got_mask, want_mask)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_last, want_last, rtol=1e-5, atol=1e-5)


# -- dpo ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [
    {"pref_loss": "sigmoid"},
    {"pref_loss": "sigmoid", "ld_alpha": 0.5, "pref_ftx": 0.3},  # per-token positions and lengths matter here
    {"pref_loss": "orpo"},
    {"pref_loss": "simpo"},
], ids=["sigmoid", "sigmoid-ld-ftx", "orpo", "simpo"])
def test_dpo_padding_free_loss_and_gradients_equal_padded(model_path, tmp_path, keys):
    from tunelab.train.stages.dpo import PreferenceTrainer

    trainer = trainer_for(PreferenceTrainer, load(model_path), "dpo", tmp_path, **keys)
    perturb(trainer.model)
    padded, free = both(PairCollator, pair_features())

    if trainer.reference_kind != "none":  # the reference's values too (they are what precompute stores)
        with trainer.reference() as ref:
            want_ref, got_ref = trainer.reference_values(ref, padded), trainer.reference_values(ref, free)
        for key in want_ref:
            torch.testing.assert_close(got_ref[key], want_ref[key], rtol=1e-5, atol=1e-5)

    want_loss, want_out, want_grads = loss_and_grads(trainer, padded)
    got_loss, got_out, got_grads = loss_and_grads(trainer, free)
    assert got_loss.item() == pytest.approx(want_loss.item(), rel=1e-5, abs=1e-6)
    assert want_out["chosen_rewards"].abs().max() > 0 and want_out["chosen_rewards"].shape == (4,)
    for key in ("chosen_rewards", "rejected_rewards"):
        torch.testing.assert_close(got_out[key], want_out[key], rtol=1e-5, atol=1e-5)
    assert_same_grads(got_grads, want_grads)


# -- rm ------------------------------------------------------------------------------------------------------


def test_rm_padding_free_rewards_loss_and_gradients_equal_padded(model_path, tmp_path):
    from tunelab.train.stages.rm import RewardTrainer, pair_rewards

    trainer = trainer_for(RewardTrainer, load(model_path), "rm", tmp_path)
    padded, free = both(PairCollator, pair_features())
    with torch.no_grad():
        want = pair_rewards(trainer.model, trainer.value_head, padded)
        got = pair_rewards(trainer.model, trainer.value_head, free)
    assert want.shape == (8,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    want_loss, want_out, want_grads = loss_and_grads(trainer, padded)
    got_loss, got_out, got_grads = loss_and_grads(trainer, free)
    assert got_loss.item() == pytest.approx(want_loss.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(got_out["chosen_rewards"], want_out["chosen_rewards"], rtol=1e-5, atol=1e-5)
    assert any(name.startswith("v_head") for name in want_grads)
    assert_same_grads(got_grads, want_grads)


# -- kto -----------------------------------------------------------------------------------------------------


def test_kto_padding_free_loss_kl_and_gradients_equal_padded(model_path, tmp_path):
    from tunelab.train.stages.kto import KTOTrainer

    trainer = trainer_for(KTOTrainer, load(model_path), "kto", tmp_path, pref_ftx=0.2)
    perturb(trainer.model)
    padded, free = both(KTOCollator, kto_features(), cutoff_len=64)
    with trainer.reference() as ref:
        want_ref, got_ref = trainer.reference_values(ref, padded), trainer.reference_values(ref, free)
    for key in ("ref_logps", "ref_kl_logps"):
        assert want_ref[key].shape == (5,)
        torch.testing.assert_close(got_ref[key], want_ref[key], rtol=1e-5, atol=1e-5)

    want_loss, want_out, want_grads = loss_and_grads(trainer, padded)
    want_kl = trainer.step_metrics.pop_means("train")["kl"]
    got_loss, got_out, got_grads = loss_and_grads(trainer, free)
    got_kl = trainer.step_metrics.pop_means("train")["kl"]
    assert got_loss.item() == pytest.approx(want_loss.item(), rel=1e-5, abs=1e-6)
    assert got_kl == pytest.approx(want_kl, rel=1e-4, abs=1e-6)
    torch.testing.assert_close(got_out["rewards"], want_out["rewards"], rtol=1e-5, atol=1e-5)
    assert_same_grads(got_grads, want_grads)
