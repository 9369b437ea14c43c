"""Aggregation and the printed table, on hand-made predictions."""

from __future__ import annotations

from tunelab.eval.accuracy import SubjectResult, Tally, aggregate, format_table
from tunelab.eval.questions import Subject


def test_tally_counts_unanswered_apart() -> None:
    tally = Tally()
    for prediction, answer in [("A", "A"), ("B", "A"), ("C", ""), ("D", "D")]:
        tally.add(prediction, answer)
    assert (tally.correct, tally.scored, tally.unscored) == (2, 3, 1)
    assert tally.accuracy == 100 * 2 / 3
    assert Tally().accuracy is None


def test_table_layout() -> None:
    results = [
        SubjectResult(Subject("law", "law", "Humanities"), ["A", "B"], ["A", "A"]),
        SubjectResult(Subject("physics", "physics", "STEM"), ["C", "C", "C", "D"], ["C", "C", "C", "C"]),
        SubjectResult(Subject("exam", "exam", "Other"), ["A"], [""]),
    ]
    scores = aggregate(results)
    assert list(scores.categories) == ["STEM", "Humanities", "Other"]
    assert format_table(results, scores) == "\n".join([
        "subject     category        n  accuracy",
        "---------------------------------------",
        "law         Humanities      2     50.00",
        "physics     STEM            4     75.00",
        "exam        Other           0         -",
        "---------------------------------------",
        "STEM                        4     75.00",
        "Humanities                  2     50.00",
        "Other                       0         -",
        "---------------------------------------",
        "Average                     6     66.67",
        "(1 question(s) have no answer in the data: predicted, not scored)",
    ])
