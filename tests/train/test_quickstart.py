"""The README's quick start: the bundled config trains the built-in tiny model offline until it
answers the identity questions it was trained on, word for word."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_learns_identity_and_reproduces_an_answer(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "saves" / "quickstart"
    assert main(["train", str(REPO / "examples" / "quickstart.yaml"), f"output_dir={out}"]) == 0
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    final_loss = [r["loss"] for r in log if "loss" in r][-1]
    assert final_loss < 0.1
    assert (out / "training_loss.png").is_file()

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    data = json.loads((REPO / "src/tunelab/resources/data/identity.json").read_text(encoding="utf-8"))
    question = next(d for d in data if d["instruction"] == "Who are you?")
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": question["instruction"]}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    generated = model.generate(**inputs, max_new_tokens=80, do_sample=False)
    answer = tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer == question["output"]
