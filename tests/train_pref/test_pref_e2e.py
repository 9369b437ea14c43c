"""End-to-end rm / dpo / kto on a tiny Qwen2 model with the bundled demo preference data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunelab.cli.main import main
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training


def pref_args(model: Path, out: Path, **extra: object) -> list[str]:
    values = {
        "model_name_or_path": model, "stage": "dpo", "do_train": True, "template": "qwen",
        "dataset": "dpo_en_demo", "max_samples": 16, "cutoff_len": 96, "per_device_train_batch_size": 4,
        "learning_rate": 1e-2, "max_steps": 6, "logging_steps": 1, "save_steps": 100, "report_to": "none",
        "output_dir": out, "lr_scheduler_type": "constant", "seed": 0,
    }
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def log_lines(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    return [line for line in lines if "loss" in line]


@pytest.fixture
def capture_trainer(monkeypatch):
    """The trainer instance a run builds (for its reference model)."""
    from tunelab.train.trainers.reference import ReferenceTrainer

    captured = {}
    original = ReferenceTrainer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        captured["trainer"] = self

    monkeypatch.setattr(ReferenceTrainer, "__init__", spy)
    return captured


def test_dpo_rewards_accuracy_and_margin_rise(tiny_qwen, tmp_path):
    out = tmp_path / "dpo"
    run_training(parse_config(pref_args(tiny_qwen, out)))
    lines = log_lines(out)
    assert len(lines) == 6
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                "logps/rejected"):
        assert all(key in line for line in lines), key
    first, last = lines[0], lines[-1]
    assert first["loss"] == pytest.approx(0.693147, abs=1e-5)  # policy == reference at step 1
    assert first["rewards/margins"] == 0 and first["rewards/accuracies"] == 0
    assert last["rewards/accuracies"] >= 0.75 and last["rewards/margins"] > 0.02
    early = sum(line["rewards/margins"] for line in lines[:2]) / 2
    late = sum(line["rewards/margins"] for line in lines[-2:]) / 2
    assert late > early and last["loss"] < first["loss"]
    assert (out / "adapter_model.safetensors").is_file()


def test_lora_reference_and_full_copy_reference_agree(tiny_qwen, tmp_path, capture_trainer):
    """Same first-step loss (with an SFT part, so the policy's log-probs enter it) on both reference paths;
    after training, the adapter-disabled model and the frozen copy still equal the initial model."""
    from transformers import AutoModelForCausalLM

    from tunelab.train.collators import PairCollator
    from tunelab.train.losses.logprobs import forward_token_logps

    common = {"pref_ftx": 0.5, "max_steps": 2}
    lora = run_training(parse_config(pref_args(tiny_qwen, tmp_path / "lora", **common)))
    lora_trainer = capture_trainer["trainer"]
    full = run_training(parse_config(pref_args(tiny_qwen, tmp_path / "full", finetuning_type="full",
                                               learning_rate=1e-3, **common)))
    full_trainer = capture_trainer["trainer"]
    assert lora_trainer.reference_kind == "adapter" and lora_trainer.ref_model is None
    assert full_trainer.reference_kind == "copy" and full_trainer.ref_model is not None
    first_lora, first_full = log_lines(tmp_path / "lora")[0], log_lines(tmp_path / "full")[0]
    assert first_lora["loss"] == pytest.approx(first_full["loss"], rel=1e-6)
    assert first_lora["loss/sft"] == pytest.approx(first_full["loss/sft"], rel=1e-6)
    assert first_lora["loss"] > 0.6932 + 1.0  # log 2 + 0.5 · NLL: the policy's log-probs are in it

    rows = [lora_trainer.train_dataset[i] for i in range(4)]
    batch = PairCollator(pad_token_id=lora.tokenizer.pad_token_id)(rows)
    batch.pop("num_tokens")
    initial = AutoModelForCausalLM.from_pretrained(tiny_qwen).eval()
    with torch.no_grad():
        want, _ = forward_token_logps(initial, batch)
        with lora_trainer.reference() as ref:
            via_adapter, _ = forward_token_logps(ref, batch)
        with full_trainer.reference() as ref:
            via_copy, _ = forward_token_logps(ref, batch)
        trained, _ = forward_token_logps(full.model.eval(), batch)
    assert torch.allclose(via_adapter, want, atol=1e-5) and torch.allclose(via_copy, want, atol=1e-5)
    assert not torch.allclose(trained, want, atol=1e-3)  # while the policy itself moved


def test_precomputed_reference_gives_the_same_run(tiny_qwen, tmp_path, capture_trainer):
    extra = {"finetuning_type": "full", "learning_rate": 1e-3, "max_steps": 2}
    run_training(parse_config(pref_args(tiny_qwen, tmp_path / "live", **extra)))
    run_training(parse_config(pref_args(tiny_qwen, tmp_path / "pre", precompute_ref_log_probs=True, **extra)))
    trainer = capture_trainer["trainer"]
    assert trainer.precomputed and trainer.ref_model is None  # no copy kept
    live, pre = log_lines(tmp_path / "live"), log_lines(tmp_path / "pre")
    for a, b in zip(live, pre, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize(("pref_loss", "first_loss"), [("orpo", None), ("simpo", None), ("ipo", 25.0), ("hinge", 1.0)])
def test_other_pref_losses_train(tiny_qwen, tmp_path, capture_trainer, pref_loss, first_loss):
    out = tmp_path / pref_loss
    run_training(parse_config(pref_args(tiny_qwen, out, pref_loss=pref_loss, max_steps=1)))
    lines = log_lines(out)
    assert all(torch.isfinite(torch.tensor(line["loss"])) for line in lines)
    if first_loss is not None:
        assert lines[0]["loss"] == pytest.approx(first_loss, rel=1e-5)  # ipo: (0 − 1/(2β))², hinge: 1 − 0
    kind = capture_trainer["trainer"].reference_kind
    assert kind == ("none" if pref_loss in ("orpo", "simpo") else "adapter")


def _pairs_accuracy(model, head, trainer_rows, pad_id: int) -> float:
    from tunelab.model.value_head import sequence_rewards
    from tunelab.train.collators import PairCollator

    batch = PairCollator(pad_token_id=pad_id)(trainer_rows)
    with torch.no_grad():
        rewards = sequence_rewards(model.eval(), head, batch)
    half = len(trainer_rows)
    return float((rewards[:half] > rewards[half:]).float().mean())


def test_reward_model_learns_its_pairs_and_reloads_for_scoring(tiny_qwen, tmp_path, capsys):
    from tunelab.cli import cmd_score
    from tunelab.infer.scoring import RewardScorer
    from tunelab.model.value_head import load_value_head

    out = tmp_path / "rm"
    run = run_training(parse_config(pref_args(tiny_qwen, out, stage="rm", max_steps=8, save_steps=4)))
    lines = log_lines(out)
    assert all("accuracy" in line for line in lines)
    assert (out / "value_head.safetensors").is_file() and (out / "checkpoint-4" / "value_head.safetensors").is_file()
    assert (out / "adapter_model.safetensors").is_file()
    # the LM folder stays a plain adapter: no value-head weights inside it
    from safetensors.torch import load_file

    assert not any("v_head" in k for k in load_file(str(out / "adapter_model.safetensors")))

    # accuracy on its own training pairs, from the saved files, well above chance
    cli_args = [f"--model_name_or_path={tiny_qwen}", f"--adapter_name_or_path={out}", "--template=qwen",
                "--stage=rm", "--finetuning_type=lora"]
    scorer = cmd_score.RewardModel(parse_config(cli_args))
    from tunelab.data.loader import load_splits

    config = parse_config(pref_args(tiny_qwen, out, stage="rm"))
    examples = load_splits(config.data, "rm", seed=0).train[:16]
    from tunelab.data.encode import encode_pairwise

    rows = [encode_pairwise(scorer.tokenizer, scorer.template, e) for e in examples]
    accuracy = _pairs_accuracy(scorer.model, scorer.head, rows, scorer.tokenizer.pad_token_id)
    assert accuracy >= 0.75

    # the in-memory head and the reloaded one score alike; `tunelab score` prints that number
    assert torch.allclose(load_value_head(out / "value_head.safetensors").summary.weight,
                          run.model.v_head.summary.weight.detach().cpu())
    e = examples[0]
    expected = scorer.score(e.messages[-1].content, e.chosen.content)
    assert cmd_score.main([*cli_args, "--prompt", e.messages[-1].content, "--response", e.chosen.content]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(printed) == pytest.approx(expected, abs=1e-5)
    # the inference layer's scorer (API /v1/score/evaluation) reads the same file
    served = RewardScorer.from_value_head(scorer.model, scorer.tokenizer, out / "value_head.safetensors")
    served_weights = [p.detach().cpu() for p in served.value_head.parameters()]
    assert all(torch.allclose(a, b) for a, b in zip(served_weights, scorer.head.parameters(), strict=True))


def test_kto_trains_with_a_kl_estimate(tiny_qwen, tmp_path):
    out = tmp_path / "kto"
    run_training(parse_config(pref_args(tiny_qwen, out, stage="kto", dataset="kto_en_demo", max_steps=4,
                                        pref_ftx=0.1)))
    lines = log_lines(out)
    assert len(lines) == 4 and all("kl" in line for line in lines)
    first = lines[0]  # policy == reference: z0 = 0, every reward 0, every KTO loss λ(1 − σ(0)) = 0.5
    assert first["kl"] == 0 and first["loss/kto"] == pytest.approx(0.5, abs=1e-6)
    assert first["loss"] == pytest.approx(0.5 + 0.1 * first["loss/sft"], rel=1e-5) and first["loss/sft"] > 1
    assert any(line["kl"] > 0 for line in lines[1:])  # the policy moved away from the reference
    assert any("rewards/chosen" in line for line in lines) and any("rewards/rejected" in line for line in lines)


def _write_yaml(path: Path, values: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({k: str(v) if isinstance(v, Path) else v for k, v in values.items()}))
    return path


def test_train_from_yaml_and_refusals(tiny_qwen, tmp_path, capsys):
    base = {"model_name_or_path": tiny_qwen, "stage": "dpo", "do_train": True, "template": "qwen",
            "dataset": "dpo_en_demo", "max_samples": 8, "cutoff_len": 64, "per_device_train_batch_size": 4,
            "max_steps": 1, "report_to": "none", "output_dir": tmp_path / "yaml-dpo"}
    assert main(["train", str(_write_yaml(tmp_path / "dpo.yaml", base))]) == 0
    assert (tmp_path / "yaml-dpo" / "adapter_model.safetensors").is_file()

    bad = {**base, "pref_loss": "orpo", "ref_model": tiny_qwen, "output_dir": tmp_path / "bad1"}
    assert main(["train", str(_write_yaml(tmp_path / "bad1.yaml", bad))]) == 2
    assert "orpo uses no reference model" in capsys.readouterr().err

    kto_on_pairs = {**base, "stage": "kto", "output_dir": tmp_path / "bad2"}
    assert main(["train", str(_write_yaml(tmp_path / "bad2.yaml", kto_on_pairs))]) == 2
    assert "stage kto cannot use it" in capsys.readouterr().err

    kto_on_sft = {**base, "stage": "kto", "dataset": "identity", "output_dir": tmp_path / "bad3"}
    assert main(["train", str(_write_yaml(tmp_path / "bad3.yaml", kto_on_sft))]) == 2
    assert "kto_tag" in capsys.readouterr().err

    smoothing = {**base, "pref_loss": "hinge", "dpo_label_smoothing": 0.1, "output_dir": tmp_path / "bad4"}
    assert main(["train", str(_write_yaml(tmp_path / "bad4.yaml", smoothing))]) == 2
    assert "dpo_label_smoothing only applies to pref_loss: sigmoid" in capsys.readouterr().err


def test_reward_model_resume_restores_the_value_head(tiny_qwen, tmp_path):
    """Resuming from checkpoint-2 ends with the same head as the uninterrupted run (the head is restored)."""
    from tunelab.model.value_head import load_value_head

    out = tmp_path / "rm-resume"
    run_training(parse_config(pref_args(tiny_qwen, out, stage="rm", max_steps=4, save_steps=2)))
    straight = load_value_head(out / "value_head.safetensors").summary.weight
    run_training(parse_config(pref_args(tiny_qwen, out, stage="rm", max_steps=4, save_steps=2,
                                        resume_from_checkpoint=out / "checkpoint-2")))
    resumed = load_value_head(out / "value_head.safetensors").summary.weight
    assert torch.allclose(straight, resumed, atol=1e-6)
    assert not torch.allclose(load_value_head(out / "checkpoint-2" / "value_head.safetensors").summary.weight, resumed)


@pytest.mark.parametrize(("stage", "extra"), [
    ("dpo", {"pref_ftx": 0.1}), ("rm", {}), ("kto", {"dataset": "kto_en_demo", "pref_ftx": 0.1}),
])
def test_padding_free_default_trains_like_padded_batches(tiny_qwen, tmp_path, monkeypatch, stage, extra):
    """rm / dpo / kto batch padding-free by default; `padding_free: false` pads, and the runs log the same losses."""
    from tunelab.data import batching
    from tunelab.train import collators
    from tunelab.train.stages import kto

    packed_calls = []
    original = batching.pack_sequences
    for module in (collators, kto):  # the pair collator (rm, dpo) and the kto collator
        monkeypatch.setattr(module, "pack_sequences", lambda *a, **k: packed_calls.append(1) or original(*a, **k))

    config = parse_config(pref_args(tiny_qwen, tmp_path / "free", stage=stage, max_steps=3, **extra))
    assert config.data.padding_free is True
    run_training(config)
    assert packed_calls
    packed_calls.clear()
    run_training(parse_config(pref_args(tiny_qwen, tmp_path / "padded", stage=stage, max_steps=3, padding_free=False,
                                        **extra)))
    assert not packed_calls
    free, padded = log_lines(tmp_path / "free"), log_lines(tmp_path / "padded")
    assert len(free) == len(padded) == 3
    for a, b in zip(free, padded, strict=True):
        for key in ("loss", "accuracy", "rewards/margins", "kl", "loss/sft"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5), key
