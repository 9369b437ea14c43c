"""`tunelab eval` on the bundled sample task, end to end, and the command's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunelab.cli.cmd_eval import main
from tunelab.errors import UserError
from tunelab.eval.tasks import open_task


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage: tunelab eval CONFIG.yaml" in capsys.readouterr().out
    assert main([]) == 2


def test_nothing_to_evaluate(tiny_model_dir: Path) -> None:
    with pytest.raises(UserError, match="nothing to evaluate"):
        main([f"model_name_or_path={tiny_model_dir}"])


def test_anchor_eval_config_runs_unchanged(tmp_path: Path, tiny_model_dir: Path, monkeypatch, capsys) -> None:
    """The anchor's llama3_lora_eval.yaml shape (template: fewshot, lang, n_shot, save_dir, batch_size)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({
        "model_name_or_path": str(tiny_model_dir), "trust_remote_code": True, "finetuning_type": "lora",
        "task": "tunelab_sample_zh_test", "template": "fewshot", "lang": "zh", "n_shot": 5,
        "save_dir": "saves/eval", "batch_size": 4,
    }), encoding="utf-8")
    assert main([str(config)]) == 0
    table = capsys.readouterr().out
    assert "小学数学" in table and "Average" in table
    scores = json.loads((tmp_path / "saves" / "eval" / "scores.json").read_text(encoding="utf-8"))
    assert (scores["task"], scores["split"], scores["lang"], scores["n_shot"], scores["template"]) == (
        "tunelab_sample_zh_test", "test", "zh", 5, "fewshot")
    predictions = json.loads((tmp_path / "saves" / "eval" / "results.json").read_text(encoding="utf-8"))
    task = open_task("tunelab_sample_zh")
    correct = 0
    for subject in task.subjects():  # the saved accuracy is the saved predictions against the answers
        answers = [q.answer for q in task.questions(subject.key, "test")]
        predicted = [predictions[subject.key][str(i)] for i in range(len(answers))]
        assert set(predicted) <= {"A", "B", "C", "D"}
        hits = sum(p == a for p, a in zip(predicted, answers))
        assert scores["subjects"][subject.key]["correct"] == hits
        correct += hits
    assert scores["average"]["correct"] == correct and scores["average"]["scored"] == 18
    assert (tmp_path / "saves" / "eval" / "results.log").read_text(encoding="utf-8").strip() in table

    with pytest.raises(UserError, match="already holds files"):  # never overwrites a result
        main([str(config)])


def test_unknown_task_before_loading_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="task 'nosuch'"):
        main(["model_name_or_path=/does/not/exist", "task=nosuch_test"])
