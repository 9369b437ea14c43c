"""The acceptance proof that training reads the pixels: solid-colour pictures, one identical question.

Text alone cannot do better than guessing among the K colours (answer loss log K: the question is the
same for every picture). A tiny VLM trained through `tunelab train` must get far below that and name
every training picture's colour by greedy decoding; the same run on pictures that are all one grey
(a control: the pixels carry no answer) stays at log K, which shows the low loss comes from the pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from tests.multimodal.conftest import write_dataset

from tunelab.cli.main import main

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}
QUESTION = "What colour is this?"
# family -> the anchor's template name, and keys of its run (Gemma 3's projector normalises the random
# SigLIP's features of solid colours close together: it trains too, as Gemma's own VLM recipes do)
DEFAULT_KEYS = "max_steps: 60\nlearning_rate: 2.0e-2\n"
FAMILIES = {"qwen2_vl": ("qwen2_vl", ""),
            "gemma3": ("gemma3", "freeze_multi_modal_projector: false\nmax_steps: 60\nlearning_rate: 3.0e-2\n")}


def _colour_rows(folder: Path, grey: bool) -> list[dict]:
    rows = []
    for name, rgb in COLOURS.items():
        for size in ((56, 56), (42, 56)):
            file = f"{name}_{size[0]}.png"
            Image.new("RGB", size, (128, 128, 128) if grey else rgb).save(folder / file)
            rows.append({"messages": [{"role": "user", "content": f"<image>{QUESTION}"},
                                      {"role": "assistant", "content": name}], "images": [file]})
    return rows


def _train(model: Path, data: Path, out: Path, template: str, keys: str = "") -> None:
    config = out.parent / f"{out.name}.yaml"
    config.write_text(f"""model_name_or_path: {model}
stage: sft
do_train: true
finetuning_type: full
dataset: colours
dataset_dir: {data}
template: {template}
check_template: false
cutoff_len: 256
output_dir: {out}
per_device_train_batch_size: 8
lr_scheduler_type: constant
logging_steps: 20
save_strategy: "no"
report_to: none
{keys or DEFAULT_KEYS}""")
    assert main(["train", str(config)]) == 0


def _answers(out: Path, data: Path, rows: list[dict]) -> tuple[list[str], float]:
    """Greedy answers to every training picture and the mean loss of the colour's first token, computed
    by the trained model and processor as transformers loads them from the output folder."""
    from transformers import AutoConfig

    from tunelab.data.conversation import Example, Message, Role
    from tunelab.data.encode_media import MediaEncoding, encode_prompt_media
    from tunelab.data.media import MediaOptions
    from tunelab.data.templates import get_template
    from tunelab.model.load import model_class
    from tunelab.model.multimodal import multimodal_family_of_folder
    from tunelab.model.processor import load_processor

    family = multimodal_family_of_folder(str(out))
    model = model_class(AutoConfig.from_pretrained(out)).from_pretrained(out).eval()
    processor = load_processor(str(out), family, {})
    media = MediaEncoding(processor, dict(family.placeholders), MediaOptions())
    template = get_template(FAMILIES[family.name][0], processor.tokenizer)
    answers, losses = [], []
    for row in rows:
        example = Example(messages=(Message(Role.USER, f"<image>{QUESTION}"),),
                          images=(str(data / row["images"][0]),))
        ids, inputs = encode_prompt_media(processor.tokenizer, template, example, media)
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids=input_ids, **inputs).logits[0, -1].float()
            generated = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **inputs,
                                       max_new_tokens=3, do_sample=False)
        target = processor.tokenizer.encode(row["messages"][1]["content"], add_special_tokens=False)[0]
        losses.append(-torch.log_softmax(logits, -1)[target].item())
        answers.append(processor.tokenizer.decode(generated[0, len(ids):], skip_special_tokens=True).strip())
    return answers, sum(losses) / len(losses)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_tiny_vlm_learns_colours_from_the_pixels(family: str, vlm, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", "colours", [])
    rows = _colour_rows(data, grey=False)
    write_dataset(data, "colours", rows)
    _train(vlm(family), data, tmp_path / "out", *FAMILIES[family])
    answers, loss = _answers(tmp_path / "out", data, rows)
    assert answers == [row["messages"][1]["content"] for row in rows]
    assert loss < 0.1 * math.log(len(COLOURS))


def test_without_colour_in_the_pixels_the_loss_stays_at_guessing(vlm, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", "colours", [])
    rows = _colour_rows(data, grey=True)
    write_dataset(data, "colours", rows)
    _train(vlm("qwen2_vl"), data, tmp_path / "out", "qwen2_vl")
    _, loss = _answers(tmp_path / "out", data, rows)
    assert loss > 0.9 * math.log(len(COLOURS))
