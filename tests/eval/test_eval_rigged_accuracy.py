"""Per-subject, per-category and overall accuracy on a rigged model whose answers are known in advance.

The rigged model is the tiny Qwen2 with its logits overwritten: at each row's last real token the
letter it "believes" scores highest; at the positions a padding-confused scorer would read (the last
column, the first real token, the real length counted from the left) a different letter scores even
higher, so reading the wrong position gives different answers. Everything else (task
loading, prompts, chat template, padding, scoring, aggregation) is the real code.
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from tunelab.eval.accuracy import save_results
from tunelab.eval.benchmark import BenchmarkSettings, evaluate_task
from tunelab.eval.tasks import bundled_task_dir, open_task

# what the rigged model answers, per subject, for the 6 test questions in file order
BELIEFS = {
    "elementary_arithmetic": ["B", "C", "A", "A", "A", "A"],  # gold B C A D B B -> 3/6
    "world_geography": ["D", "B", "A", "C", "B", "A"],  # gold D B A C B A -> 6/6
    "english_vocabulary": ["C", "C", "C", "C", "C", "C"],  # gold A C B D B A -> 1/6
}


class RiggedModel(torch.nn.Module):
    """Wraps a real model; the believed letter of the question in the last user turn wins."""

    def __init__(self, inner: torch.nn.Module, tokenizer, beliefs: dict[str, str]) -> None:
        super().__init__()
        self.inner, self.tokenizer, self.beliefs = inner, tokenizer, beliefs
        self.letter_ids = {letter: tokenizer.encode(letter, add_special_tokens=False)[-1] for letter in "ABCD"}
        self.seen = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> SimpleNamespace:
        logits = self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits.clone()
        top = float(logits.abs().max()) + 10
        for row in range(input_ids.shape[0]):
            real = attention_mask[row].nonzero().flatten()
            text = self.tokenizer.decode(input_ids[row, real])
            last_turn = text.rsplit("<|im_start|>user\n", 1)[1]
            believed = next(letter for question, letter in self.beliefs.items() if question + "\nA." in last_turn)
            last = int(real[-1]) - input_ids.shape[1]  # index from the end: valid for all or kept logits
            logits[row, last, self.letter_ids[believed]] = top
            decoy = "A" if believed != "A" else "B"  # where a padding-blind scorer could look instead
            for position in {-1, int(real[0]) - input_ids.shape[1], len(real) - 1 - input_ids.shape[1]} - {last}:
                if -position <= logits.shape[1]:
                    logits[row, position, self.letter_ids[decoy]] = 2 * top
            self.seen += 1
        return SimpleNamespace(logits=logits)


def rigged(task, tiny_model, tokenizer) -> RiggedModel:
    beliefs = {}
    for subject, letters in BELIEFS.items():
        for question, letter in zip(task.questions(subject, "test"), letters, strict=True):
            beliefs[question.question] = letter
    return RiggedModel(tiny_model, tokenizer, beliefs)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_accuracy_equals_hand_computation(batch_size, tiny_model, tokenizer, qwen_template) -> None:
    task = open_task("tunelab_sample")
    model = rigged(task, tiny_model, tokenizer)
    run = evaluate_task(task, model, tokenizer, qwen_template, BenchmarkSettings(n_shot=5, batch_size=batch_size))
    assert model.seen == 18
    assert {r.subject.key: r.predictions for r in run.results} == BELIEFS
    assert {k: t.accuracy for k, t in run.scores.subjects.items()} == pytest.approx(
        {"elementary_arithmetic": 50.0, "world_geography": 100.0, "english_vocabulary": 100 / 6})
    assert {k: t.accuracy for k, t in run.scores.categories.items()} == pytest.approx(
        {"STEM": 50.0, "Social Sciences": 100.0, "Humanities": 100 / 6})
    assert list(run.scores.categories) == ["STEM", "Social Sciences", "Humanities"]
    assert (run.scores.overall.correct, run.scores.overall.scored) == (10, 18)
    assert run.scores.overall.accuracy == pytest.approx(100 * 10 / 18)


def test_categories_pool_their_subjects_questions(tmp_path, tiny_model, tokenizer, qwen_template) -> None:
    root = tmp_path / "pooled"
    shutil.copytree(bundled_task_dir() / "tunelab_sample", root)
    (root / "mapping.json").write_text(json.dumps({
        "elementary_arithmetic": {"name": "arithmetic", "category": "STEM"},
        "world_geography": {"name": "geography", "category": "STEM"},
        "english_vocabulary": {"name": "vocabulary", "category": "Humanities"},
    }), encoding="utf-8")
    task = open_task("pooled", str(tmp_path))
    run = evaluate_task(task, rigged(task, tiny_model, tokenizer), tokenizer, qwen_template, BenchmarkSettings(n_shot=0))
    assert run.scores.categories["STEM"].accuracy == pytest.approx(75.0)  # (3 + 6) / 12
    assert run.scores.categories["Humanities"].accuracy == pytest.approx(100 / 6)
    assert run.table().splitlines()[-1].split() == ["Average", "18", "55.56"]

    save_results(tmp_path / "out", run.results, run.scores, {"task": "pooled_test"})
    scores = json.loads((tmp_path / "out" / "scores.json").read_text(encoding="utf-8"))
    assert scores["task"] == "pooled_test"
    assert scores["subjects"]["world_geography"] == {"name": "geography", "category": "STEM", "accuracy": 100.0,
                                                     "correct": 6, "scored": 6, "unscored": 0}
    assert scores["categories"]["STEM"]["accuracy"] == 75.0
    assert scores["average"] == {"accuracy": 55.5556, "correct": 10, "scored": 18, "unscored": 0}
    predictions = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert predictions["english_vocabulary"] == {str(i): "C" for i in range(6)}
    assert (tmp_path / "out" / "results.log").read_text(encoding="utf-8").startswith("subject")
