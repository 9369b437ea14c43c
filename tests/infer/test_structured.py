"""Structured output through llguidance (infer/structured.py + GrammarMask): even a random tiny model writes
schema-valid JSON, or exactly one call of a tool in the template's own format, because every other token is
masked out. transformers' generate runs the processors, as the hf engine's plain path does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.data.templates.tools import TOOL_FORMATS, get_tool_format
from tunelab.infer.logits_processors import request_processors
from tunelab.infer.params import SamplingParams
from tunelab.infer.structured import Constraint, problem, tool_call_grammar

pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "ok"],
    "additionalProperties": False,
}
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}}, "required": ["city"],
           "additionalProperties": False}


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def generate(tiny: tuple[Any, Any], constraint: Constraint, *, sample: bool, seed: int = 0) -> tuple[str, list[int]]:
    from transformers import LogitsProcessorList

    model, tokenizer = tiny
    prompt = tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    processors = request_processors(SamplingParams(constraint=constraint), tokenizer, prompt)
    ids = torch.tensor([prompt])
    torch.manual_seed(seed)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=sample, max_new_tokens=120,
                         logits_processor=LogitsProcessorList(processors), eos_token_id=[tokenizer.eos_token_id],
                         pad_token_id=tokenizer.pad_token_id)
    new = out[0, len(prompt):].tolist()
    return tokenizer.decode(new, skip_special_tokens=False), new


@pytest.mark.parametrize("sample", [False, True])
def test_random_model_writes_schema_valid_json(tiny: tuple[Any, Any], sample: bool) -> None:
    text, new = generate(tiny, Constraint("json_schema", schema=PERSON), sample=sample)
    assert new[-1] == tiny[1].eos_token_id  # the grammar ended the answer, max_new_tokens did not
    answer = json.loads(text.removesuffix(tiny[1].eos_token))
    jsonschema.validate(answer, PERSON)
    assert ", " in text and "  " not in text  # json.dumps' layout, no padding whitespace


def test_forced_tool_call_is_one_call_of_the_named_tool_in_the_template_format(tiny: tuple[Any, Any]) -> None:
    fmt = get_tool_format("qwen")
    frames = [(*fmt.call_frame("get_weather"), WEATHER)]
    text, new = generate(tiny, Constraint("grammar", grammar=tool_call_grammar(frames, tiny[1])), sample=True)
    assert new[0] == tiny[1].convert_tokens_to_ids("<tool_call>")  # the special token, not its spelling
    [call] = fmt.extract(text.removesuffix(tiny[1].eos_token))
    assert call.name == "get_weather"
    jsonschema.validate(call.arguments, WEATHER)


def test_call_frames_round_trip_through_each_formats_parser() -> None:
    for fmt in TOOL_FORMATS.values():
        before, after = fmt.call_frame("get_weather")
        [call] = fmt.extract(before + '{"city": "Paris"}' + after)
        assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"}), fmt.name


def test_a_schema_the_library_cannot_enforce_is_reported(tiny: tuple[Any, Any]) -> None:
    assert problem(Constraint("json_schema", schema=PERSON), tiny[1]) is None
    found = problem(Constraint("json_schema", schema={"type": "object", "properties": {"a": {"type": "wat"}}}), tiny[1])
    assert found is not None and "wat" in found
