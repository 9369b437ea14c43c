"""The `cutoff_len` rule of `tunelab.data.encode_truncate`, token by token, on hand-made tokens.

Every token below has its own id (its position in the untruncated example), so each test states
exactly which tokens survive. No tokenizer: the rule is a function of the tokens' turn / response /
content / unit flags alone (tests/templates/test_stages.py checks it on real templates).
"""

from __future__ import annotations

import pytest

from tunelab.data.encode_tokens import Token
from tunelab.data.encode_truncate import (
    _cut_prompt,
    _keep_start,
    infer_seqlen,
    last_response_len,
    split_turns,
    truncate,
)


class Tokens:
    """Builds a token list: markup pieces are one unit each, content tokens a unit of their own."""

    def __init__(self) -> None:
        self.tokens: list[Token] = []

    def markup(self, turn: int, n: int, response: bool = False) -> Tokens:
        unit = len(self.tokens)
        self.tokens += [Token(len(self.tokens) + i, turn, response, response, False, unit) for i in range(n)]
        return self

    def content(self, turn: int, n: int, response: bool = False) -> Tokens:
        for _ in range(n):
            self.tokens.append(Token(len(self.tokens), turn, response, response, True, -1 - len(self.tokens)))
        return self


def conversation() -> list[Token]:
    """Two turns and the separator after the last answer (31 tokens, ids 0..30):

    turn 0: prompt 0-1 markup, 2-7 content, 8-9 markup | answer 10-15 content, 16 end of turn
    turn 1: prompt 17-18 markup, 19-22 content, 23-24 markup | answer 25-28 content, 29 end of turn
    turn 2: 30, the separator the template writes after an answer
    """
    b = Tokens()
    b.markup(0, 2).content(0, 6).markup(0, 2).content(0, 6, response=True).markup(0, 1, response=True)
    b.markup(1, 2).content(1, 4).markup(1, 2).content(1, 4, response=True).markup(1, 1, response=True)
    b.markup(2, 1)
    return b.tokens


def ids(tokens: list[Token]) -> list[int]:
    return [t.id for t in tokens]


def span(start: int, stop: int) -> list[int]:
    return list(range(start, stop))


# -- the share rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target", "budget", "kept"), [
    (10, 4, 10, (6, 4)),  # a response under half the budget is kept whole, the prompt gets the rest
    (10, 5, 10, (7, 3)),  # exactly half is not "under half": proportional shares
    (3, 20, 10, (3, 7)),  # a prompt under half the budget is kept whole, the response gets the rest
    (4, 20, 10, (4, 6)),
    (5, 20, 10, (2, 8)),  # exactly half: proportional, int(10 * 20 / 25) = 8 to the response
    (30, 10, 20, (15, 5)),  # both long: in proportion, int(20 * 10 / 40) = 5
    (2, 3, 10, (2, 3)),  # both fit: nothing is cut
    (5, 5, 0, (0, 0)),  # no budget: nothing
])
def test_infer_seqlen_shares_the_budget_like_the_anchor(source, target, budget, kept):
    assert infer_seqlen(source, target, budget) == kept


# -- splitting into turns -----------------------------------------------------------------------------


def test_split_turns_separates_prompt_and_answer_of_each_turn_in_order():
    turns = split_turns(conversation())
    assert [(ids(p), ids(r)) for p, r in turns] == [(span(0, 10), span(10, 17)), (span(17, 25), span(25, 30)),
                                                      ([30], [])]
    shuffled = [Token(1, 1, False, False, True, -1), Token(0, 0, True, True, True, -2)]
    assert [(ids(p), ids(r)) for p, r in split_turns(shuffled)] == [([], [0]), ([1], [])]


def test_last_response_len_is_the_last_answers_length():
    assert last_response_len(conversation()) == 5  # turn 1's answer, not turn 0's (7) nor the separator turn
    assert last_response_len(Tokens().markup(0, 3).tokens) == 0


# -- what survives the cut ----------------------------------------------------------------------------


def test_an_example_that_fits_is_kept_whole():
    tokens = conversation()
    for cutoff in (31, 40):
        kept = truncate(tokens, cutoff)
        assert ids(kept) == span(0, 31) and kept is not tokens


def test_the_first_turn_that_does_not_fit_shares_the_rest_and_later_text_is_dropped():
    # turn 0 (17 tokens) fits; turn 1 gets 9: infer_seqlen(8, 5, 9) = (6, 3): its prompt keeps its markup and
    # two content tokens, its answer its first three; the separator after the cut answer is dropped
    assert ids(truncate(conversation(), 26)) == span(0, 17) + [17, 18, 19, 20, 23, 24, 25, 26, 27]


def test_a_turn_that_fits_exactly_is_kept_and_an_answer_that_fits_keeps_its_end():
    # turn 1 gets 13 == 8 + 5: whole; nothing is left for the separator
    assert ids(truncate(conversation(), 30)) == span(0, 30)
    # turn 1 gets 12: infer_seqlen(8, 5, 12) = (7, 5): one prompt content token goes, the whole answer stays
    assert ids(truncate(conversation(), 29)) == span(0, 17) + [17, 18, 19, 20, 21, 23, 24] + span(25, 30)


def test_a_turn_whose_markup_does_not_fit_is_dropped():
    # turn 1 gets 3: infer_seqlen(8, 5, 3) = (2, 1): two prompt tokens cannot hold its 4 markup tokens
    assert ids(truncate(conversation(), 20)) == span(0, 17)


def test_a_prompt_cut_to_exactly_its_markup_keeps_all_the_markup():
    # turn 1 gets 5: infer_seqlen(8, 5, 5) = (4, 1): the four markup tokens, no content, the answer's first token
    assert ids(truncate(conversation(), 22)) == span(0, 17) + [17, 18, 23, 24, 25]


def test_an_answer_cut_to_nothing_drops_its_turn():
    b = Tokens().markup(0, 2).content(0, 3, response=True).markup(0, 1, response=True)  # turn 0: 0-5
    b.markup(1, 1).content(1, 10).markup(1, 1).markup(1, 3, response=True)  # turn 1: an answer of end markup only
    # turn 1 gets 6: infer_seqlen(12, 3, 6) = (5, 1), and 1 token of a 3-token markup unit is none
    assert ids(truncate(b.tokens, 12)) == span(0, 6)


def test_a_multi_token_end_of_turn_is_never_split():
    b = Tokens().markup(0, 1).content(0, 1).content(0, 2, response=True).markup(0, 3, response=True)
    # the answer is 2 content + 3 end-of-turn tokens; with room for 3 or 4 of them only the content stays
    assert ids(truncate(b.tokens, 5)) == span(0, 4)
    assert ids(truncate(b.tokens, 6)) == span(0, 4)
    assert ids(truncate(b.tokens, 7)) == span(0, 7)


def test_mask_history_keeps_turns_from_the_last_one_backwards():
    # the separator (1), then turn 1 (13): 14 of 16; turn 0 gets 2: (2, 0), too few for its 4 markup tokens
    assert ids(truncate(conversation(), 16, last_first=True)) == span(17, 31)


def test_mask_history_drops_the_separator_when_the_last_answer_is_cut():
    # separator first (1), then turn 1 gets 9: (6, 3), its answer loses its end, so the separator goes too
    assert ids(truncate(conversation(), 10, last_first=True)) == [17, 18, 19, 20, 23, 24, 25, 26, 27]


def test_mask_history_keeps_the_separator_when_only_the_prompt_is_cut():
    # separator (1), then turn 1 gets 11: (6, 5), the prompt loses two content tokens, the answer stays whole
    assert ids(truncate(conversation(), 12, last_first=True)) == [17, 18, 19, 20, 23, 24] + span(25, 31)


def test_response_len_gives_the_last_turn_the_share_of_a_longer_answer():
    """Preference pairs: the shorter answer is truncated as if it were as long as the longer one, so both
    sides keep the same prompt, even when the shorter side alone would fit."""
    # turn 1 gets 14, shared as if its answer had 10 tokens: infer_seqlen(8, 10, 14) = (7, 7): one prompt
    # content token goes; the answer (5) is whole; the rule stops at that turn, so the separator goes
    assert ids(truncate(conversation(), 31, response_len=10)) == span(0, 17) + [17, 18, 19, 20, 21, 23, 24] + span(25, 30)
    # an answer of the length it is: nothing changes, down to the last token of room
    assert ids(truncate(conversation(), 31, response_len=5)) == span(0, 31)


def test_an_answer_shorter_than_response_len_leaves_its_room_to_the_text_after_it():
    # turn 1 fits exactly with the share of a 6-token answer (8 + 6 = 14); its answer has 5, so the separator
    # after it still fits in the 1 token left
    assert ids(truncate(conversation(), 31, response_len=6)) == span(0, 31)


def test_tokens_without_an_answer_are_cut_like_a_prompt_and_ignore_response_len():
    b = Tokens().markup(0, 2).content(0, 5).markup(0, 1)
    assert ids(truncate(b.tokens, 5)) == [0, 1, 2, 3, 7]
    two = Tokens().markup(0, 1).content(0, 2).markup(1, 1).content(1, 2).tokens
    assert ids(truncate(two, 6, response_len=5)) == span(0, 6)


# -- the helpers' edge cases --------------------------------------------------------------------------


def test_cut_prompt_drops_content_from_the_end_and_keeps_markup():
    prompt = Tokens().markup(0, 2).content(0, 3).markup(0, 1).content(0, 2).markup(0, 1).tokens
    assert ids(_cut_prompt(prompt, 9)) == span(0, 9)
    assert ids(_cut_prompt(prompt, 6)) == [0, 1, 2, 3, 5, 8]
    assert ids(_cut_prompt(prompt, 4)) == [0, 1, 5, 8]
    assert _cut_prompt(prompt, 3) is None


def test_keep_start_drops_a_markup_unit_it_would_split():
    tokens = Tokens().content(0, 2, response=True).markup(0, 3, response=True).content(0, 1, response=True).tokens
    assert ids(_keep_start(tokens, 2)) == [0, 1]
    assert ids(_keep_start(tokens, 3)) == [0, 1]
    assert ids(_keep_start(tokens, 4)) == [0, 1]
    assert ids(_keep_start(tokens, 5)) == span(0, 5)  # the unit is whole
    assert ids(_keep_start(tokens, 6)) == span(0, 6)
    markup_only = Tokens().markup(0, 3, response=True).tokens
    assert _keep_start(markup_only, 2) == []
    assert ids(_keep_start(markup_only, 3)) == [0, 1, 2]
    assert _keep_start(markup_only, 0) == []
