"""BLEU-4 and ROUGE-1/2/L for generated predictions, as pure functions (no extra packages).

Text with CJK characters is compared character by character (Chinese has no spaces to split on);
other text word by word. Scores are percentages averaged over examples, as the anchor reports them.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def tokenize_for_metrics(text: str) -> list[str]:
    """CJK characters one by one, other runs of characters split on whitespace and punctuation."""
    tokens: list[str] = []
    for piece in re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+", text):
        if _CJK.fullmatch(piece):
            tokens.append(piece)
        else:
            tokens.extend(t for t in re.findall(r"\w+|[^\w\s]", piece))
    return tokens


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu4(hypothesis: list[str], reference: list[str]) -> float:
    """Sentence BLEU-4 with geometric smoothing of zero counts (NIST / Chen & Cherry method 3)."""
    if not hypothesis or not reference:
        return 0.0
    log_precision = 0.0
    zero_runs = 0
    for n in range(1, 5):
        hyp, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
        total = max(sum(hyp.values()), 1)
        matches = sum(min(count, ref[gram]) for gram, count in hyp.items())
        if matches == 0:
            zero_runs += 1
            precision = 1.0 / (2**zero_runs * total)
        else:
            precision = matches / total
        log_precision += math.log(precision) / 4
    ratio = len(hypothesis) / len(reference)
    brevity = 1.0 if ratio > 1 else math.exp(1 - 1 / ratio)
    return brevity * math.exp(log_precision)


def rouge_n(hypothesis: list[str], reference: list[str], n: int) -> float:
    """ROUGE-N F1."""
    hyp, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
    overlap = sum((hyp & ref).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(hyp.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: list[str], reference: list[str]) -> float:
    """ROUGE-L F1 from the longest common subsequence."""
    lcs = _lcs_length(hypothesis, reference)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hypothesis), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Average BLEU-4, ROUGE-1/2/L (percent) and exact match over prediction / reference pairs."""
    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    scores: dict[str, list[float]] = {"bleu-4": [], "rouge-1": [], "rouge-2": [], "rouge-l": [], "exact_match": []}
    for prediction, reference in zip(predictions, references):
        hyp, ref = tokenize_for_metrics(prediction), tokenize_for_metrics(reference)
        scores["bleu-4"].append(sentence_bleu4(hyp, ref))
        scores["rouge-1"].append(rouge_n(hyp, ref, 1))
        scores["rouge-2"].append(rouge_n(hyp, ref, 2))
        scores["rouge-l"].append(rouge_l(hyp, ref))
        scores["exact_match"].append(float(prediction.strip() == reference.strip()))
    return {key: round(100 * sum(values) / max(len(values), 1), 4) for key, values in scores.items()}
