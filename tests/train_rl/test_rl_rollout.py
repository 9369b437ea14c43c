"""Reward-model scoring of rollouts: each completion is scored as the row stage rm trained the reward model on."""

from __future__ import annotations

import pytest
import torch

from tunelab.data.conversation import Example, Message, Role
from tunelab.data.encode import encode_pairwise, encode_prompt, stop_token_ids
from tunelab.data.templates import get_template
from tunelab.train.rl.rollout import Rollout, completion_mask, end_of_turn_ids


def rollout(prompt: list[int], completion: list[int], stop_ids: list[int], pad: int) -> Rollout:
    """One left-padded prompt (two pads) and its completion, as `sample` builds them."""
    prompt_ids = torch.tensor([[pad, pad, *prompt]])
    completions = torch.tensor([completion])
    mask = completion_mask(completions, stop_ids)
    sequences = torch.cat((prompt_ids, completions.masked_fill(mask == 0, pad)), dim=1)
    attention = torch.cat((torch.tensor([[0, 0] + [1] * len(prompt)]), mask.long()), dim=1)
    return Rollout(sequences, attention, prompt_ids.shape[1], mask)


@pytest.mark.parametrize(("tokenizer", "template_name"), [("qwen2.5", "qwen"), ("deepseek-v3", "deepseek3")])
def test_completions_are_scored_as_the_finished_turns_rm_trained_on(tokenizer_dir, tokenizer, template_name):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir / tokenizer))
    template = get_template(template_name, tok)
    question, text = Message(Role.USER, "Name a colour."), "Blue, like the sky."
    answer = Message(Role.ASSISTANT, text)
    trained_on = encode_pairwise(tok, template, Example(messages=(question,), chosen=answer, rejected=answer))
    prompt = encode_prompt(tok, template, [question])
    content = tok.encode(text, add_special_tokens=False)
    stops, pad = stop_token_ids(tok, template), int(tok.pad_token_id or 0)
    end_of_turn = end_of_turn_ids(tok, template)
    assert end_of_turn and trained_on["chosen_input_ids"][-len(end_of_turn):] == end_of_turn

    stopped = rollout(prompt, [*content, stops[0], content[0]], stops, pad)  # ends at its stop token
    cut = rollout(prompt, content, stops, pad)  # reached max_new_tokens: no stop token
    for case in (stopped, cut):
        assert case.finished_turns(stops, end_of_turn) == [trained_on["chosen_input_ids"]]
    assert stopped.rows() == [prompt + content + stops[:1]]  # the raw rows still end at the stop token
