"""Generation-based evaluation of a data set, end to end on the tiny model, and its refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tunelab.cli.cmd_eval import main
from tunelab.errors import UserError
from tunelab.eval.generation import generate_hf
from tunelab.eval.text_metrics import generation_metrics


def test_generation_eval_writes_predictions_and_metrics(tmp_path: Path, tiny_model_dir: Path, tiny_model, tokenizer,
                                                        qwen_template, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # ./data absent: the bundled demo data is used
    out = tmp_path / "gen"
    argv = [f"model_name_or_path={tiny_model_dir}", "template=qwen", "eval_dataset=alpaca_en_demo", "max_samples=3",
            "max_new_tokens=3", f"save_dir={out}", "batch_size=2"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    metrics = json.loads((out / "predict_results.json").read_text(encoding="utf-8"))
    assert len(records) == metrics["predict_samples"] == 3
    assert records[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert records[0]["label"] == "tenalp"  # the first alpaca_en_demo answer
    expected = generation_metrics([r["predict"] for r in records], [r["label"] for r in records])
    assert {k: metrics[f"predict_{k}"] for k in expected} == expected

    # perplexity by hand: each example encoded as training would, one forward pass each, no padding
    from tunelab.config.data_args import DataArguments
    from tunelab.data.encode import encode_supervised
    from tunelab.data.loader import load_examples
    from tunelab.eval.perplexity import token_nll

    examples = load_examples(DataArguments(eval_dataset="alpaca_en_demo", max_samples=3), "sft", "eval")
    nll, tokens = 0.0, 0
    for example in examples:
        encoded = encode_supervised(tokenizer, qwen_template, example.messages, system=example.system)
        logits = tiny_model(input_ids=torch.tensor([encoded["input_ids"]])).logits
        part, count = token_nll(logits, torch.tensor([encoded["labels"]]))
        nll, tokens = nll + part, tokens + count
    assert metrics["predict_perplexity_tokens"] == tokens
    assert metrics["predict_perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-3)


def test_left_padded_generation_continues_each_prompt(tiny_model, tokenizer) -> None:
    prompts = [[9707, 11, 1879], [40]]
    kwargs = {"max_new_tokens": 3, "do_sample": False, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": []}
    batched = generate_hf(tiny_model, tokenizer, prompts, batch_size=2, gen_kwargs=kwargs)
    alone = [tiny_model.generate(input_ids=torch.tensor([p]), **kwargs)[0, len(p):] for p in prompts]
    assert batched == [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in alone]


def test_generation_needs_somewhere_to_write(tiny_model_dir: Path) -> None:
    with pytest.raises(UserError, match="save_dir is not set"):
        main([f"model_name_or_path={tiny_model_dir}", "eval_dataset=alpaca_en_demo"])


def test_vllm_backend_without_vllm_names_the_package(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="needs the package 'vllm'"):
        main([f"model_name_or_path={tiny_model_dir}", "template=qwen", "eval_dataset=alpaca_en_demo", "max_samples=1",
              "infer_backend=vllm", f"save_dir={tmp_path / 'o'}"])
