"""Task data: the MMLU, CMMLU and C-Eval layouts (loose or zipped), the bundled sample, the offline hub."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tunelab.errors import UserError
from tunelab.eval.questions import Question, Subject
from tunelab.eval.tasks import bundled_task_names, open_task, parse_task


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(("task", "name", "split"), [
    ("mmlu_test", "mmlu", "test"), ("ceval_validation", "ceval", "val"), ("cmmlu_test", "cmmlu", "test"),
    ("tunelab_sample_zh_dev", "tunelab_sample_zh", "dev"),
])
def test_parse_task(task: str, name: str, split: str) -> None:
    parsed = parse_task(task)
    assert (parsed.name, parsed.split) == (name, split)


def test_parse_task_without_split() -> None:
    with pytest.raises(UserError, match="must end with the split"):
        parse_task("mmlu")


def test_bundled_tasks_are_found_when_task_dir_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bundled_task_names() == ["tunelab_sample", "tunelab_sample_zh"]
    for name in bundled_task_names():
        task = open_task(name)
        assert len(task.subjects()) == 3
        for subject in task.subjects():
            assert len(task.questions(subject.key, "dev")) == 5
            test = task.questions(subject.key, "test")
            assert len(test) == 6 and all(q.answer in q.letters for q in test)
    first = open_task("tunelab_sample").questions("elementary_arithmetic", "test")[0]
    assert first == Question("What is 6 + 7?", (("A", "12"), ("B", "13"), ("C", "14"), ("D", "11")), "B")


def test_mmlu_layout_without_header(tmp_path: Path) -> None:
    root = tmp_path / "evaluation" / "mmlu"
    write(root / "mapping.json", json.dumps({"algebra": {"name": "abstract algebra", "category": "STEM"}}))
    write(root / "data" / "test" / "algebra_test.csv", 'What is 1+1?,1,2,3,4,B\n"Pick, with comma",x,y,z,w,D\n')
    write(root / "data" / "dev" / "algebra_dev.csv", "Q,a,b,c,d,A\n")
    task = open_task("mmlu", str(tmp_path / "evaluation"))
    assert task.subjects() == [Subject("algebra", "abstract algebra", "STEM")]
    questions = task.questions("algebra", "test")
    assert questions[1] == Question("Pick, with comma", (("A", "x"), ("B", "y"), ("C", "z"), ("D", "w")), "D")
    assert task.questions("algebra", "dev")[0].answer == "A"
    assert task.questions("algebra", "val") is None


def test_cmmlu_layout_index_column_and_capitalised_header(tmp_path: Path) -> None:
    root = tmp_path / "cmmlu"
    write(root / "test" / "agronomy.csv", ",Question,A,B,C,D,Answer\n0,问题一,甲,乙,丙,丁,C\n")
    task = open_task("cmmlu", str(tmp_path))
    assert task.subjects() == [Subject("agronomy", "agronomy", "Other")]  # no mapping.json: discovered
    assert task.questions("agronomy", "test") == [Question("问题一", (("A", "甲"), ("B", "乙"), ("C", "丙"), ("D", "丁")), "C")]


def test_ceval_layout_zipped_with_unanswered_test(tmp_path: Path) -> None:
    root = tmp_path / "ceval"
    root.mkdir()
    (root / "mapping.json").write_text(json.dumps({"law": {"name": "法学", "category": "Humanities"}}), encoding="utf-8")
    with zipfile.ZipFile(root / "ceval.zip", "w") as archive:
        archive.writestr("val/law_val.csv", "id,question,A,B,C,D,answer,explanation\n0,问,1,2,3,4,A,因为\n")
        archive.writestr("test/law_test.csv", "id,question,A,B,C,D\n0,问,1,2,3,4\n")
    task = open_task("ceval", str(tmp_path))
    assert task.questions("law", "val")[0].answer == "A"
    assert task.questions("law", "test")[0].answer == ""


def test_bad_answer_names_file_and_row(tmp_path: Path) -> None:
    write(tmp_path / "t" / "data" / "test" / "s_test.csv", "question,A,B,C,D,answer\nq,1,2,3,4,A\nq,1,2,3,4,E\n")
    task = open_task("t", str(tmp_path))
    with pytest.raises(UserError, match=r"s_test\.csv:3: answer 'E' is not one of the choices A, B, C, D"):
        task.questions("s", "test")


def test_unknown_task_lists_what_exists(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="task 'nope': no folder .*tunelab_sample"):
        open_task("nope", str(tmp_path))


def test_hub_task_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"task 'mmlu': no folder 'evaluation/mmlu' and the hub cannot be reached \(offline\)"):
        open_task("mmlu")
