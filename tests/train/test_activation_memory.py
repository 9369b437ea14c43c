"""Activation checkpointing by default only when one step's activations would not fit."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from tunelab.model.activation_memory import activation_bytes_per_token, decide

QWEN2_1_5B = SimpleNamespace(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                             num_key_value_heads=2)


def test_activation_estimate_of_a_known_shape():
    # 28 layers × (8·1536 + 2·256 + 4·8960) elements × 2 bytes (bf16)
    assert activation_bytes_per_token(QWEN2_1_5B, 2) == 28 * (12288 + 512 + 35840) * 2 == 2_723_840


@pytest.mark.parametrize(("batch", "cutoff", "free_gib", "enabled"), [
    (8, 2048, 60, True),  # R1 on an H100 after the weights: ~41.6 GiB of activations > 30 GiB
    (8, 2048, 90, False),  # the same on a GPU with room: no recompute
    (1, 512, 8, False),  # short rows fit easily
])
def test_decision_against_half_the_free_memory(batch, cutoff, free_gib, enabled):
    decision = decide(batch * cutoff, QWEN2_1_5B, 2, free_gib * 2**30)
    assert decision.enabled is enabled
    assert f"{decision.activation_bytes / 2**30:.2f} GiB" in decision.reason()


def test_training_logs_the_rule_and_an_explicit_choice_wins(tiny_qwen, tmp_path, caplog):
    from tunelab.config.parser import parse_config
    from tunelab.train.recipe import run_training

    base = [f"--model_name_or_path={tiny_qwen}", "--stage=sft", "--do_train=true", "--dataset=identity",
            "--template=qwen", "--max_samples=4", "--max_steps=1", "--report_to=none", "--cutoff_len=64",
            "--finetuning_type=lora", "--per_device_train_batch_size=2"]
    with caplog.at_level(logging.INFO, logger="tunelab"):
        run = run_training(parse_config([*base, f"--output_dir={tmp_path / 'a'}"]))
    assert "activation checkpointing off (default rule: one step's activations need about" in caplog.text
    assert not run.model.is_gradient_checkpointing
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tunelab"):
        run = run_training(parse_config([*base, f"--output_dir={tmp_path / 'b'}", "--gradient_checkpointing=true"]))
    assert "activation checkpointing on (activation_checkpointing: true)" in caplog.text
    assert run.model.is_gradient_checkpointing


def test_weights_still_on_the_host_count_against_the_gpu(monkeypatch):
    import torch

    from tunelab.model import activation_memory

    model = torch.nn.Linear(1024, 1024)  # 4 MiB of float32 weights, on the CPU
    model.config = QWEN2_1_5B
    model.device = torch.device("cpu")
    model.dtype = torch.bfloat16
    monkeypatch.setattr(activation_memory, "free_memory_bytes", lambda cuda: 64 * 2**20)
    on_gpu = activation_memory.choose_checkpointing(model, batch_size=1, cutoff_len=1, full_weights_train=False,
                                                     device_is_cuda=True)
    on_host = activation_memory.choose_checkpointing(model, batch_size=1, cutoff_len=1, full_weights_train=False,
                                                      device_is_cuda=False)
    assert on_host.free_bytes == 64 * 2**20
    assert on_gpu.free_bytes == 64 * 2**20 - (1024 * 1024 + 1024) * 4
