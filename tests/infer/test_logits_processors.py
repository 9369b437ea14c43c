"""The per-request logits processors (infer/logits_processors.py): OpenAI's penalties by their formula,
logit_bias through transformers' processor, and what `request_processors` builds for which params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.infer.logits_processors import GrammarMask, OpenAIPenalties, request_processors
from tunelab.infer.params import SamplingParams
from tunelab.infer.structured import Constraint


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def greedy(model: Any, tokenizer: Any, prompt: list[int], params: SamplingParams, new: int = 12) -> list[int]:
    from transformers import LogitsProcessorList

    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new,
                         logits_processor=LogitsProcessorList(request_processors(params, tokenizer, prompt)),
                         eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    return out[0, len(prompt):].tolist()


def test_penalties_follow_openais_formula_over_generated_tokens_only() -> None:
    prompt = [5, 5, 5]  # prompt tokens are not counted
    penalties = OpenAIPenalties(len(prompt), presence=0.5, frequency=0.25)
    scores = torch.zeros(1, 8)
    out = penalties(torch.tensor([prompt + [2, 2, 3]]), scores)
    expected = torch.zeros(1, 8)
    expected[0, 2] = -(2 * 0.25 + 0.5)
    expected[0, 3] = -(1 * 0.25 + 0.5)
    assert torch.equal(out, expected)
    assert torch.equal(penalties(torch.tensor([prompt]), scores), scores)  # nothing generated yet


def test_nothing_asked_builds_nothing_and_each_call_is_fresh(tiny: tuple[Any, Any]) -> None:
    tokenizer = tiny[1]
    assert request_processors(SamplingParams(), tokenizer, [1, 2]) == []
    params = SamplingParams(presence_penalty=0.1, logit_bias=((7, -5.0),), constraint=Constraint("json_object"))
    first = request_processors(params, tokenizer, [1, 2])
    second = request_processors(params, tokenizer, [1, 2])
    assert [type(p).__name__ for p in first] == ["SequenceBiasLogitsProcessor", "OpenAIPenalties", "GrammarMask"]
    assert isinstance(first[-1], GrammarMask) and first[-1].matcher is not second[-1].matcher


def test_logit_bias_minus_100_keeps_a_token_out(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    prompt = tokenizer.encode("hello there", add_special_tokens=False)
    plain = greedy(model, tokenizer, prompt, SamplingParams())
    banned = plain[0]
    biased = greedy(model, tokenizer, prompt, SamplingParams(logit_bias=((banned, -100.0),)))
    assert banned in plain and banned not in biased


def test_frequency_penalty_grows_with_each_repeat(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    prompt = tokenizer.encode("hello there", add_special_tokens=False)
    favoured = tokenizer.encode(" yes", add_special_tokens=False)[0]
    bias = ((favoured, 6.0),)  # greedy writes this token at every step ...
    plain = greedy(model, tokenizer, prompt, SamplingParams(logit_bias=bias), new=16)
    assert plain == [favoured] * 16
    # ... until `count x 2.0` outweighs the bias; presence alone (once, 2.0) does not
    penalised = greedy(model, tokenizer, prompt, SamplingParams(logit_bias=bias, frequency_penalty=2.0), new=16)
    assert 1 <= penalised.count(favoured) <= 6
    present = greedy(model, tokenizer, prompt, SamplingParams(logit_bias=bias, presence_penalty=2.0), new=16)
    assert present.count(favoured) > penalised.count(favoured)
