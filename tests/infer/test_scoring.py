"""Reward scoring: the anchor's value-head files and transformers' sequence classifiers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from tunelab.config.parser import parse_config
from tunelab.infer.loader import load_chat_model


def test_value_head_scores_the_last_hidden_state(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "rm"))
    torch.manual_seed(0)
    weight, bias = torch.randn(1, 32), torch.tensor([0.5])
    save_file({"v_head.summary.weight": weight, "v_head.summary.bias": bias}, str(model_dir / "value_head.safetensors"))
    chat_model = load_chat_model(parse_config([f"model_name_or_path={model_dir}", "template=qwen", "stage=rm"]))
    scores = chat_model.scorer.score(["a good answer", "bad"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    for text, score in zip(["a good answer", "bad"], scores):
        with torch.no_grad():
            hidden = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states[-1][0, -1]
        assert abs(score - float(hidden @ weight[0] + bias[0])) < 1e-4


def test_sequence_classifier_reward_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config: Any = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_config(config)
    classifier.save_pretrained(tmp_path / "cls")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "cls")
    chat_model = load_chat_model(parse_config([f"model_name_or_path={tmp_path / 'cls'}", "template=qwen", "stage=rm"]))
    [score] = chat_model.scorer.score(["some text"])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "cls")
    with torch.no_grad():
        expected = float(classifier(**tokenizer("some text", return_tensors="pt")).logits[0, 0])
    assert abs(score - expected) < 1e-4
