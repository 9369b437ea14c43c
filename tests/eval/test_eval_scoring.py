"""Letter scoring: the highest-scoring allowed letter wins, read at each row's last real token."""

from __future__ import annotations

import torch

from tunelab.eval.scoring import last_token_logits, letter_token_ids, pick_letters, score_prompts

IDS = {"A": 0, "B": 1, "C": 2, "D": 3, "E": 4}


def test_picks_the_highest_scoring_letter() -> None:
    logits = torch.tensor([[0.1, 2.0, 0.3, -1.0, 9.0, 50.0], [5.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    picks = pick_letters(logits, IDS, [("A", "B", "C", "D"), ("A", "B", "C", "D")])
    assert [p for p, _ in picks] == ["B", "A"]  # E (9.0) and the non-letter token (50.0) are not choices
    probs = picks[1][1]
    assert probs["A"] == round(float(torch.softmax(torch.tensor([5.0, 1.0, 1.0, 1.0]), 0)[0]), 6)
    assert abs(sum(probs.values()) - 1) < 1e-5


def test_a_question_with_fewer_choices_only_picks_among_them() -> None:
    logits = torch.tensor([[0.0, 1.0, 7.0, 0.0]])
    assert pick_letters(logits, IDS, [("A", "B")])[0][0] == "B"


def test_letter_ids_are_the_bare_letters(tokenizer) -> None:
    ids = letter_token_ids(tokenizer, "ABCD")
    assert ids == {"A": 32, "B": 33, "C": 34, "D": 35}
    assert [tokenizer.decode([i]) for i in ids.values()] == ["A", "B", "C", "D"]


def test_padding_does_not_change_a_rows_scores(tiny_model) -> None:
    prompts = [[9707, 11, 1879], [9707], [151644, 872, 198, 9707, 11]]
    batched = last_token_logits(tiny_model, prompts, pad_id=151643)
    for row, prompt in enumerate(prompts):
        alone = tiny_model(input_ids=torch.tensor([prompt])).logits[0, -1]
        torch.testing.assert_close(batched[row], alone, atol=1e-4, rtol=1e-4)


def test_batch_size_does_not_change_answers(tiny_model) -> None:
    prompts = [[9707 + i] * (i + 1) for i in range(5)]
    letters = [("A", "B", "C", "D")] * 5
    ids = {"A": 32, "B": 33, "C": 34, "D": 35}
    one = score_prompts(tiny_model, prompts, letters, ids, pad_id=151643, batch_size=1)
    many = score_prompts(tiny_model, prompts, letters, ids, pad_id=151643, batch_size=4)
    assert [p for p, _ in one] == [p for p, _ in many]
    for (_, a), (_, b) in zip(one, many):
        assert all(abs(a[k] - b[k]) < 1e-4 for k in a)
