"""Prompt construction pinned by golden strings: 0-shot and 5-shot, English and Chinese wording."""

from __future__ import annotations

import pytest

from tunelab.data.conversation import Role
from tunelab.data.encode import encode_prompt
from tunelab.errors import UserError
from tunelab.eval.fewshot_template import FewshotTemplate, encode_messages
from tunelab.eval.prompts import build_messages, get_style, question_text, select_shots
from tunelab.eval.questions import Question
from tunelab.eval.tasks import open_task

SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"

GOLDEN_EN_0 = (
    SYSTEM + "<|im_start|>user\nThe following are multiple choice questions (with answers) about world geography.\n\n"
    "What is the capital of Italy?\nA. Milan\nB. Rome\nC. Naples\nD. Turin\nAnswer:<|im_end|>\n<|im_start|>assistant\n"
)
GOLDEN_EN_5 = (
    SYSTEM + "<|im_start|>user\nThe following are multiple choice questions (with answers) about world geography.\n\n"
    "Which continent is Kenya in?\nA. Asia\nB. Europe\nC. Africa\nD. Oceania\nAnswer:<|im_end|>\n"
    "<|im_start|>assistant\nC<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of Japan?\nA. Osaka\nB. Kyoto\nC. Tokyo\nD. Sapporo\nAnswer:<|im_end|>\n"
    "<|im_start|>assistant\nC<|im_end|>\n"
    "<|im_start|>user\nWhich ocean lies between Europe and North America?\nA. Indian\nB. Arctic\nC. Pacific\nD. Atlantic\n"
    "Answer:<|im_end|>\n<|im_start|>assistant\nD<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?\nA. Paris\nB. Lyon\nC. Rome\nD. Madrid\nAnswer:<|im_end|>\n"
    "<|im_start|>assistant\nA<|im_end|>\n"
    "<|im_start|>user\nWhich river flows through Cairo?\nA. Amazon\nB. Nile\nC. Danube\nD. Ganges\nAnswer:<|im_end|>\n"
    "<|im_start|>assistant\nB<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of Italy?\nA. Milan\nB. Rome\nC. Naples\nD. Turin\nAnswer:<|im_end|>\n"
    "<|im_start|>assistant\n"
)
GOLDEN_ZH_0 = (
    SYSTEM + "<|im_start|>user\n以下是中国关于中国地理考试的单项选择题，请选出其中的正确答案。\n\n"
    "黄山位于哪个省？\nA. 安徽\nB. 江西\nC. 浙江\nD. 福建\n答案：<|im_end|>\n<|im_start|>assistant\n"
)
GOLDEN_ZH_5 = (
    SYSTEM + "<|im_start|>user\n以下是中国关于中国地理考试的单项选择题，请选出其中的正确答案。\n\n"
    "中国的首都是哪座城市？\nA. 上海\nB. 广州\nC. 北京\nD. 南京\n答案：<|im_end|>\n<|im_start|>assistant\nC<|im_end|>\n"
    "<|im_start|>user\n中国面积最大的省级行政区是哪个？\nA. 西藏\nB. 内蒙古\nC. 新疆\nD. 青海\n答案：<|im_end|>\n"
    "<|im_start|>assistant\nC<|im_end|>\n"
    "<|im_start|>user\n杭州位于哪个省？\nA. 江苏\nB. 福建\nC. 安徽\nD. 浙江\n答案：<|im_end|>\n<|im_start|>assistant\nD<|im_end|>\n"
    "<|im_start|>user\n中国最长的河流是哪条？\nA. 长江\nB. 黄河\nC. 珠江\nD. 淮河\n答案：<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    "<|im_start|>user\n哪座城市被称为“山城”？\nA. 成都\nB. 重庆\nC. 西安\nD. 武汉\n答案：<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n"
    "<|im_start|>user\n黄山位于哪个省？\nA. 安徽\nB. 江西\nC. 浙江\nD. 福建\n答案：<|im_end|>\n<|im_start|>assistant\n"
)

CASES = [
    ("tunelab_sample", "world_geography", "en", 0, GOLDEN_EN_0),
    ("tunelab_sample", "world_geography", "en", 5, GOLDEN_EN_5),
    ("tunelab_sample_zh", "china_geography", "zh", 0, GOLDEN_ZH_0),
    ("tunelab_sample_zh", "china_geography", "zh", 5, GOLDEN_ZH_5),
]


@pytest.mark.parametrize(("task", "subject", "lang", "n_shot", "golden"), CASES)
def test_prompt_golden(task, subject, lang, n_shot, golden, tokenizer, qwen_template) -> None:
    source = open_task(task)
    name = next(s.name for s in source.subjects() if s.key == subject)
    question = source.questions(subject, "test")[1]
    shots = select_shots(source.questions(subject, "dev"), n_shot, seed=42)
    messages = build_messages(question, shots, name, get_style(lang))
    assert tokenizer.decode(encode_prompt(tokenizer, qwen_template, messages)) == golden


def test_question_text_is_the_anchor_format() -> None:
    question = Question("2 + 2?", (("A", "3"), ("B", "4")), "B")
    assert question_text(question, get_style("en")) == "2 + 2?\nA. 3\nB. 4\nAnswer:"
    assert question_text(question, get_style("zh")) == "2 + 2?\nA. 3\nB. 4\n答案："


def test_shots_are_seeded_and_capped() -> None:
    dev = [Question(f"q{i}", (("A", "x"), ("B", "y")), "A") for i in range(5)]
    assert select_shots(dev, 3, seed=42) == select_shots(dev, 3, seed=42)
    assert [q.question for q in select_shots(dev, 9, seed=42)] == ["q0", "q4", "q2", "q1", "q3"]
    assert select_shots(dev, 0, seed=42) == []
    assert {q.question for q in select_shots(dev, 5, seed=1)} == {f"q{i}" for i in range(5)}


def test_dev_question_never_shows_its_own_answer() -> None:
    dev = [Question(f"q{i}", (("A", "x"), ("B", "y")), "A") for i in range(3)]
    messages = build_messages(dev[1], dev, "s", get_style("en"))
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT, Role.USER, Role.ASSISTANT, Role.USER]
    assert messages[-1].content == "q1\nA. x\nB. y\nAnswer:"
    assert all(not m.content.endswith("q1\nA. x\nB. y\nAnswer:") for m in messages[:-1])


def test_fewshot_template_is_plain_text(tokenizer) -> None:
    dev = [Question("1+1?", (("A", "2"), ("B", "3")), "A")]
    target = Question("2+2?", (("A", "5"), ("B", "4")), "B")
    messages = build_messages(target, dev, "math", get_style("en"))
    text = FewshotTemplate().render_text(messages)
    assert text == (
        "The following are multiple choice questions (with answers) about math.\n\n"
        "1+1?\nA. 2\nB. 3\nAnswer:A\n\n2+2?\nA. 5\nB. 4\nAnswer:"
    )
    assert tokenizer.decode(encode_messages(tokenizer, FewshotTemplate(), messages)) == text


def test_unknown_language_is_a_user_error() -> None:
    with pytest.raises(UserError, match="lang: unknown prompt language 'fr'"):
        get_style("fr")
