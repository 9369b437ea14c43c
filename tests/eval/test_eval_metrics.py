"""Metric functions against hand-computed values: BLEU-4, ROUGE-1/2/L, exact match, perplexity.

BLEU and ROUGE are tunelab.eval.text_metrics (shared with training's do_predict); perplexity is
tunelab.eval.perplexity. Each expected number below is worked out in the comment beside it.
"""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.eval.perplexity import encoded_perplexity, perplexity, token_nll
from tunelab.eval.text_metrics import (
    generation_metrics,
    rouge_l,
    rouge_n,
    sentence_bleu4,
    tokenize_for_metrics,
)


def test_bleu4_partial_match_with_smoothing() -> None:
    # hyp a b c d / ref a b c e: p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0 -> 1/(2^1 * 1) = 1/2 (NIST smoothing);
    # same length, no brevity penalty: (3/4 * 2/3 * 1/2 * 1/2) ** (1/4) = (1/8) ** (1/4) = 2 ** -0.75
    assert sentence_bleu4("a b c d".split(), "a b c e".split()) == pytest.approx(2 ** -0.75)


def test_bleu4_brevity_penalty() -> None:
    # hyp a b c d / ref a b c d e f: every precision 1, BP = exp(1 - 6/4) = exp(-0.5)
    assert sentence_bleu4("a b c d".split(), "a b c d e f".split()) == pytest.approx(math.exp(-0.5))


def test_bleu4_matches_nltk_method3() -> None:
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    hyp, ref = "the cat sat on a mat today".split(), "the cat sat on the mat".split()
    expected = nltk_bleu.sentence_bleu([ref], hyp, smoothing_function=nltk_bleu.SmoothingFunction().method3)
    assert sentence_bleu4(hyp, ref) == pytest.approx(expected)


def test_rouge_by_hand() -> None:
    hyp, ref = "a b c d".split(), "a b c e".split()
    assert rouge_n(hyp, ref, 1) == pytest.approx(0.75)  # 3 of 4 unigrams both ways
    assert rouge_n(hyp, ref, 2) == pytest.approx(2 / 3)  # ab, bc of {ab, bc, cd} / {ab, bc, ce}
    assert rouge_l(hyp, ref) == pytest.approx(0.75)  # LCS a b c
    # LCS of "a c b d" and "a b c d" is 3 (a b d or a c d): P = R = 3/4
    assert rouge_l("a c b d".split(), "a b c d".split()) == pytest.approx(0.75)


def test_chinese_is_scored_per_character() -> None:
    assert tokenize_for_metrics("今天天气很好, ok") == ["今", "天", "天", "气", "很", "好", ",", "ok"]
    # 今天天气很好 / 今天天气不好: p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3 -> (1/12) ** (1/4)
    metrics = generation_metrics(["今天天气很好"], ["今天天气不好"])
    assert metrics["bleu-4"] == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-4)
    assert metrics["rouge-1"] == pytest.approx(100 * 5 / 6, abs=1e-4)


def test_generation_metrics_average_and_exact_match() -> None:
    metrics = generation_metrics(["a b c d", "yes "], ["a b c e", "yes"])
    # exact match compares stripped strings: 1 of 2; ROUGE averages the two examples' F1 (0.75 and 1)
    assert metrics["exact_match"] == 50.0
    assert metrics["rouge-1"] == pytest.approx(100 * (0.75 + 1.0) / 2)
    assert metrics["rouge-l"] == pytest.approx(100 * (0.75 + 1.0) / 2)


def test_token_nll_by_hand() -> None:
    # vocab of 2; the logits at position t predict label t+1.
    logits = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0], [5.0, 5.0]]])  # p = (3/4, 1/4), (1/2, 1/2), ...
    labels = torch.tensor([[-100, 0, 1]])  # predict 0 with p 3/4, then 1 with p 1/2; the first label is never predicted
    nll, tokens = token_nll(logits, labels)
    assert tokens == 2
    assert nll == pytest.approx(-math.log(0.75) - math.log(0.5))
    assert perplexity(nll, tokens) == pytest.approx(math.sqrt(1 / (0.75 * 0.5)))
    masked = torch.tensor([[-100, -100, 1]])
    assert token_nll(logits, masked) == (pytest.approx(math.log(2)), 1)


def test_perplexity_of_uniform_model_is_vocab_size() -> None:
    assert perplexity(4 * math.log(7), 4) == pytest.approx(7.0)
    assert math.isnan(perplexity(0.0, 0))


def test_padded_batches_give_the_per_example_perplexity(tiny_model) -> None:
    encoded = [
        {"input_ids": [9707, 11, 1879, 0], "labels": [-100, -100, 1879, 0]},
        {"input_ids": [40, 1079], "labels": [-100, 1079]},
        {"input_ids": [9707, 9707, 9707], "labels": [9707, 9707, 9707]},
    ]
    nll, tokens = 0.0, 0
    for e in encoded:  # one example at a time, no padding
        logits = tiny_model(input_ids=torch.tensor([e["input_ids"]])).logits
        part, count = token_nll(logits, torch.tensor([e["labels"]]))
        nll, tokens = nll + part, tokens + count
    ppl, counted = encoded_perplexity(tiny_model, encoded, pad_id=151643, batch_size=2)
    assert counted == tokens == 2 + 1 + 2
    assert ppl == pytest.approx(math.exp(nll / tokens), rel=1e-4)
