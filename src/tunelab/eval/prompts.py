"""Few-shot prompts for multiple-choice questions, with the anchor's wording in English and Chinese.

A prompt is a chat: each dev example is a user turn (question, choices, answer cue) answered by the
assistant with its letter; the question asked is the last user turn, and the model's chat template
renders the whole. The subject line opens the first user turn. Keeping the anchor's exact strings
keeps scores comparable with the numbers users already have.

The shots are drawn once per subject from the dev split with `random.Random(seed)`, so a run is
reproducible and every question of a subject sees the same examples in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tunelab.data.conversation import Message, Role
from tunelab.errors import UserError
from tunelab.eval.questions import Question


@dataclass(frozen=True)
class PromptStyle:
    """The three strings of a language: subject line, one choice line, answer cue."""

    system: str
    choice: str
    answer: str


STYLES: dict[str, PromptStyle] = {
    "en": PromptStyle(
        system="The following are multiple choice questions (with answers) about {subject}.\n\n",
        choice="\n{letter}. {content}",
        answer="\nAnswer:",
    ),
    "zh": PromptStyle(
        system="以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n",
        choice="\n{letter}. {content}",
        answer="\n答案：",
    ),
}


def get_style(lang: str) -> PromptStyle:
    if lang not in STYLES:
        raise UserError(f"lang: unknown prompt language '{lang}'; choose one of {', '.join(STYLES)}.")
    return STYLES[lang]


def question_text(question: Question, style: PromptStyle) -> str:
    """The question, one line per choice, and the answer cue (no answer)."""
    lines = [style.choice.format(letter=letter, content=content) for letter, content in question.choices]
    return "".join([question.question, *lines, style.answer])


def select_shots(dev: Sequence[Question], n_shot: int, seed: int) -> list[Question]:
    """`n_shot` dev examples (all of them when fewer), in an order fixed by `seed`."""
    if n_shot <= 0 or not dev:
        return []
    order = random.Random(seed).sample(range(len(dev)), min(n_shot, len(dev)))
    return [dev[i] for i in order]


def build_messages(question: Question, shots: Sequence[Question], subject_name: str, style: PromptStyle) -> list[Message]:
    """The chat whose continuation is the answer letter: shots as answered turns, then the question."""
    messages: list[Message] = []
    for shot in shots:
        if shot == question:  # evaluating on the dev split: never show the answer being asked for
            continue
        messages += [Message(Role.USER, question_text(shot, style)), Message(Role.ASSISTANT, shot.answer)]
    messages.append(Message(Role.USER, question_text(question, style)))
    first = messages[0]
    messages[0] = Message(first.role, style.system.format(subject=subject_name) + first.content)
    return messages
