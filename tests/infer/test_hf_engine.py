"""The hf engine on a real (tiny, random) Qwen2: streaming, limits, stops, defaults, adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tunelab.config.parser import parse_config
from tunelab.data.conversation import Message, Role
from tunelab.errors import MissingPackageError, UserError
from tunelab.infer.chat_model import ChatModel
from tunelab.infer.loader import load_chat_model

HELLO = [Message(Role.USER, "hello")]


def load(model_dir: Path, *pairs: str) -> ChatModel:
    return load_chat_model(parse_config([f"model_name_or_path={model_dir}", "template=qwen", *pairs]))


@pytest.fixture(scope="module")
def chat_model(tiny_model_dir: Path) -> ChatModel:
    return load(tiny_model_dir, "do_sample=false", "max_new_tokens=8")


def test_streams_token_by_token_and_counts(chat_model: ChatModel) -> None:
    stream = chat_model.stream_chat(HELLO)
    pieces = list(stream)
    assert len(pieces) == 8 and all(pieces)
    assert (stream.finish_reason, stream.completion_tokens) == ("length", 8)
    assert stream.prompt_tokens == len(chat_model.prompt_ids(HELLO))
    again = chat_model.stream_chat(HELLO)
    assert again.text() == "".join(pieces)  # greedy is deterministic


def test_stream_equals_plain_generate(chat_model: ChatModel) -> None:
    import torch

    ids = chat_model.prompt_ids(HELLO)
    engine: Any = chat_model.engine
    output = engine.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    expected = chat_model.tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
    assert chat_model.stream_chat(HELLO).text() == expected


def test_stop_string_truncates_and_reports_stop(chat_model: ChatModel) -> None:
    full = chat_model.stream_chat(HELLO, max_new_tokens=16, temperature=1.0, seed=1).text()
    assert len(full) > 10
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = full.index(stop)
    stream = chat_model.stream_chat(HELLO, max_new_tokens=16, temperature=1.0, seed=1, stop=[stop])
    assert stream.text() == full[:cut]
    assert stream.finish_reason == "stop"


def test_end_of_turn_token_stops_and_is_not_shown(chat_model: ChatModel) -> None:
    engine: Any = chat_model.engine
    first = chat_model.stream_chat(HELLO, max_new_tokens=1)
    first.text()
    import torch

    ids = chat_model.prompt_ids(HELLO)
    first_id = int(engine.model.generate(torch.tensor([ids]), max_new_tokens=1, do_sample=False)[0, -1])
    saved = engine.stop_ids
    engine.stop_ids = [*saved, first_id]  # make the model's first token an end-of-turn token
    try:
        stream = chat_model.stream_chat(HELLO)
        assert stream.text() == ""
        assert (stream.finish_reason, stream.completion_tokens) == ("stop", 1)
    finally:
        engine.stop_ids = saved


def test_close_cancels_generation(chat_model: ChatModel) -> None:
    import time

    engine: Any = chat_model.engine
    stream: Any = chat_model.stream_chat(HELLO, max_new_tokens=400)
    iterator = iter(stream)
    next(iterator)
    next(iterator)
    stream.close()
    deadline = time.monotonic() + 1
    while engine.scheduler_state()["decoding"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.scheduler_state() == {"decoding": 0, "waiting": 0}  # the batcher dropped it
    assert stream.completion_tokens < 400


def test_close_cancels_generate_on_the_one_at_a_time_path(chat_model: ChatModel) -> None:
    engine: Any = chat_model.engine
    engine.set_max_batch(1)
    try:
        stream: Any = chat_model.stream_chat(HELLO, max_new_tokens=400)
        iterator = iter(stream)
        next(iterator)
        stream.close()
        stream._thread.join(timeout=1)
        assert not stream._thread.is_alive()
        assert stream.completion_tokens < 400
    finally:
        engine.set_max_batch(16)


def test_beam_search_returns_the_best_beam(chat_model: ChatModel) -> None:
    import torch

    engine: Any = chat_model.engine
    ids = chat_model.prompt_ids(HELLO)
    output = engine.model.generate(torch.tensor([ids]), max_new_tokens=5, num_beams=2, do_sample=False)
    expected = chat_model.tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
    assert chat_model.stream_chat(HELLO, num_beams=2, max_new_tokens=5).text() == expected


def test_model_generation_config_is_the_default_unless_the_user_says(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "with-gen-config"))
    (model_dir / "generation_config.json").write_text(json.dumps({"do_sample": False, "max_new_tokens": 3}))
    by_model = load(model_dir)
    stream = by_model.stream_chat(HELLO)
    stream.text()
    assert (by_model.defaults.max_new_tokens, stream.completion_tokens) == (3, 3)
    by_user = load(model_dir, "max_new_tokens=5")
    stream = by_user.stream_chat(HELLO)
    stream.text()
    assert stream.completion_tokens == 5
    assert by_user.defaults.do_sample is False  # still the model's


def test_lora_adapter_is_applied(tiny_model_dir: Path, tmp_path: Path, chat_model: ChatModel) -> None:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                                           init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    tuned = load(tiny_model_dir, f"adapter_name_or_path={tmp_path / 'adapter'}", "do_sample=false", "max_new_tokens=8")
    engine: Any = tuned.engine
    assert isinstance(engine.model, PeftModel)
    merged = lora.merge_and_unload()
    ids = tuned.prompt_ids(HELLO)
    expected = merged.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    assert tuned.stream_chat(HELLO).text() == tuned.tokenizer.decode(expected[0, len(ids):], skip_special_tokens=True)
    assert tuned.stream_chat(HELLO).text() != chat_model.stream_chat(HELLO).text()


def test_prompt_longer_than_the_model_is_a_user_error(chat_model: ChatModel) -> None:
    engine: Any = chat_model.engine
    saved = engine.max_context
    engine.max_context = 40
    try:
        with pytest.raises(UserError, match="holds at most 40"):
            chat_model.stream_chat([Message(Role.USER, "word " * 40)])
        short = chat_model.stream_chat([Message(Role.USER, "hi")], max_new_tokens=100)
        assert short.params.max_new_tokens == 40 - short.prompt_tokens  # clamped to what fits
        short.close()
    finally:
        engine.max_context = saved


def test_vllm_backend_without_vllm_names_the_package(tiny_model_dir: Path) -> None:
    pytest.importorskip("transformers")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed; its engine is checked on a GPU machine")
    with pytest.raises(MissingPackageError, match="vllm"):
        load(tiny_model_dir, "infer_backend=vllm")
