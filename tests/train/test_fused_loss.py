"""The fused linear + cross-entropy equals the plain loss on full logits, value and gradients, and the
pt/sft trainer's loss equals the stock Trainer loss step for step."""

from __future__ import annotations

import pytest
import torch

from tunelab.train.losses.lm import chunk_size, chunked_linear_cross_entropy, summed_lm_loss


def plain(hidden, weight, targets, bias=None, transform=None):
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    if transform is not None:
        logits = transform(logits)
    return torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")


def leaves(n=37, h=16, v=101, dtype=torch.float64, bias=False):
    """Leaves in float64; both losses compute the cross-entropy in float32, as the stock loss does."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, h, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(v, h, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(v, generator=g, dtype=dtype, requires_grad=True) if bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    targets[::5] = -100
    return hidden, weight, b, targets


def grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("chunk", [1, 8, 64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_loss_and_gradients_equal_plain(chunk, with_bias):
    hidden, weight, bias, targets = leaves(bias=with_bias)
    expected = plain(hidden, weight, targets, bias)
    got = chunked_linear_cross_entropy(hidden, weight, targets, bias=bias, chunk=chunk)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    for g_got, g_want in zip(grads(got * 0.7, hidden, weight, bias), grads(expected * 0.7, hidden, weight, bias)):
        torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-6)


def test_softcapped_logits_match():
    hidden, weight, _, targets = leaves()

    def softcap(x):
        return torch.tanh(x / 3.0) * 3.0

    expected = plain(hidden, weight, targets, transform=softcap)
    got = chunked_linear_cross_entropy(hidden, weight, targets, transform=softcap, chunk=7)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    for g_got, g_want in zip(grads(got, hidden, weight), grads(expected, hidden, weight)):
        torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-6)


def test_frozen_head_gets_no_gradient_and_float32_matches():
    hidden, weight, _, targets = leaves(dtype=torch.float32)
    weight.requires_grad_(False)
    expected = plain(hidden, weight, targets)
    got = chunked_linear_cross_entropy(hidden, weight, targets, chunk=16)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    (g_got,), (g_want,) = grads(got, hidden), grads(expected, hidden)
    torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-6)


def test_all_targets_ignored_gives_zero_loss_and_zero_gradient():
    hidden, weight, _, targets = leaves()
    targets[:] = -100
    got = chunked_linear_cross_entropy(hidden, weight, targets, chunk=8)
    assert got.item() == 0.0
    g_hidden, g_weight = grads(got, hidden, weight)
    assert g_hidden.abs().max().item() == 0.0 and g_weight.abs().max().item() == 0.0


def test_chunk_size_keeps_logits_near_hidden_size():
    # 16k tokens, Qwen2-1.5B head (hidden 1536, vocab 151,936): liger's rule gives 256-token chunks
    assert chunk_size(16384, 1536, 151936) == 256
    assert chunk_size(10, 32, 151665) == 64  # never below the floor
    assert chunk_size(10**6, 4096, 4096) == 4096  # never above the ceiling


def test_summed_lm_loss_matches_the_model_loss(tiny_qwen):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(10, 5000, (2, 12), generator=g)
    labels = input_ids.clone()
    labels[:, :4] = -100
    labels[1, 9:] = -100
    out = model(input_ids=input_ids, labels=labels, output_hidden_states=True)
    n_targets = (labels[:, 1:] != -100).sum()
    fused = summed_lm_loss(out.hidden_states[-1], labels, model.get_output_embeddings(), model.config) / n_targets
    assert fused.item() == pytest.approx(out.loss.item(), rel=1e-5)
    fused_grads = torch.autograd.grad(fused, list(model.parameters()), retain_graph=True)
    stock_grads = torch.autograd.grad(out.loss, list(model.parameters()))
    for a, b in zip(fused_grads, stock_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_lora_head_uses_the_checkpointed_path(tiny_qwen):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["lm_head", "q_proj"], init_lora_weights=False))
    input_ids = torch.randint(10, 5000, (1, 10), generator=torch.Generator().manual_seed(2))
    out = model(input_ids=input_ids, labels=input_ids, output_hidden_states=True)
    head = model.get_output_embeddings()
    assert type(head) is not torch.nn.Linear
    fused = summed_lm_loss(out.hidden_states[-1], input_ids, head, model.config) / 9
    assert fused.item() == pytest.approx(out.loss.item(), rel=1e-5)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_lm_trainer_steps_equal_the_stock_trainer(tiny_qwen, tmp_path, accumulation):
    """Same data, same seed: CausalLMTrainer (fused loss) and the stock loss give the same weights."""
    from transformers import AutoModelForCausalLM

    from tunelab.config.training_build import build_training_arguments
    from tunelab.train.stages.lm import CausalLMTrainer, PaddingCollator
    from tunelab.train.trainers.base import TunelabTrainer

    g = torch.Generator().manual_seed(3)
    rows = []
    for length, prompt in ((9, 3), (14, 5), (6, 2), (11, 4)):
        ids = torch.randint(10, 5000, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})

    def train(trainer_cls):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
        args = build_training_arguments({
            "output_dir": str(tmp_path / trainer_cls.__name__), "per_device_train_batch_size": 2, "max_steps": 2,
            "gradient_accumulation_steps": accumulation, "learning_rate": 1e-2, "report_to": "none",
            "save_strategy": "no", "logging_steps": 1, "remove_unused_columns": False, "seed": 0,
            "train_sampling_strategy": "sequential", "use_cpu": True, "optim": "sgd",  # Adam would amplify float noise
        })
        trainer = trainer_cls(model=model, args=args, train_dataset=rows * 2,
                              data_collator=PaddingCollator(pad_token_id=0))
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        return losses, {n: p.detach().clone() for n, p in model.named_parameters()}

    stock_losses, stock_weights = train(TunelabTrainer)
    fused_losses, fused_weights = train(CausalLMTrainer)
    assert fused_losses == pytest.approx(stock_losses, rel=1e-5)
    for name, weight in stock_weights.items():
        torch.testing.assert_close(fused_weights[name], weight, rtol=1e-4, atol=1e-5)
