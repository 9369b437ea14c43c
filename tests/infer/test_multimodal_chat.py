"""Chatting with pictures: ChatModel's prompt equals the processor's own, the pixels reach `generate`, the
marker rules (none written: at the start of the last user message; counts must match), refusals by name,
the vLLM request, and the terminal's `/image` command and `--image` flag."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from tunelab.config.parser import parse_config
from tunelab.data.conversation import Message, Role
from tunelab.errors import UserError
from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import Engine, PromptMedia, TextStream
from tunelab.infer.loader import load_chat_model
from tunelab.infer.params import SamplingParams
from tunelab.infer.terminal import run_terminal_chat
from tunelab.testing_multimodal import tiny_vlm_path

VISION = "<|vision_start|><|image_pad|>"


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_vlm_path("qwen2_vl", tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pictures")
    out = {}
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        out[name] = folder / f"{name}.png"
        Image.new("RGB", (56, 56), colour).save(out[name])
    return out


@pytest.fixture(scope="module")
def vlm_chat(vlm_dir: Path) -> ChatModel:
    return load_chat_model(parse_config([f"--model_name_or_path={vlm_dir}", "--template=qwen2_vl", "--do_sample=false",
                                         "--max_new_tokens=4"]))


class Spy(Engine):
    """Delegates to a real engine and records every prompt and its media."""

    def __init__(self, inner: Engine, *, raw_media: bool = False) -> None:
        self.inner = inner
        self.tokenizer = inner.tokenizer
        self.stop_ids = inner.stop_ids
        self.max_context = inner.max_context
        self.raw_media = raw_media
        self.calls: list[tuple[list[int], PromptMedia | None]] = []

    def stream(self, prompt_ids: list[int], params: SamplingParams, media_inputs: PromptMedia | None = None) -> TextStream:
        self.calls.append((prompt_ids, media_inputs))
        return self.inner.stream(prompt_ids, params, media_inputs)


def spied(chat_model: ChatModel, **engine: Any) -> tuple[ChatModel, Spy]:
    spy = Spy(chat_model.engine, **engine)
    return ChatModel(spy, chat_model.template, chat_model.defaults, name=chat_model.name, media=chat_model.media), spy


def test_the_prompt_is_the_processors_and_the_pixels_reach_generate(vlm_chat: ChatModel, vlm_dir: Path,
                                                                   pictures: dict[str, Path]) -> None:
    processor = vlm_chat.media.processor
    model = vlm_chat.engine.model
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                          "text": "What colour?"}]}], add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.open(pictures["red"])], return_tensors="pt")
    ids, media = vlm_chat.prompt([Message(Role.USER, "<image>What colour?")], images=[str(pictures["red"])])
    assert ids == inputs["input_ids"][0].tolist()  # the processor's own expansion, token for token
    assert media is not None and torch.equal(media.tensors["pixel_values"], inputs["pixel_values"])

    seen: list[torch.Size] = []
    hook = model.model.visual.register_forward_hook(
        lambda module, args, kwargs, out: seen.append((args[0] if args else kwargs["hidden_states"]).shape),
        with_kwargs=True)
    try:
        result = vlm_chat.chat([Message(Role.USER, "<image>What colour?")], images=[str(pictures["red"])])
    finally:
        hook.remove()
    assert seen == [inputs["pixel_values"].shape]  # the vision tower ran once, on this picture's patches
    with torch.no_grad():
        expected = model.generate(**inputs, do_sample=False, max_new_tokens=4, eos_token_id=vlm_chat.engine.stop_ids,
                                  pad_token_id=vlm_chat.tokenizer.pad_token_id)[0, inputs["input_ids"].shape[1]:]
    assert result.completion_tokens == len(expected)
    assert result.text == vlm_chat.tokenizer.decode([t for t in expected if t not in vlm_chat.engine.stop_ids],
                                                    skip_special_tokens=True)
    assert result.prompt_tokens == len(ids)


def test_pictures_without_markers_go_to_the_start_of_the_last_user_message(vlm_chat: ChatModel,
                                                                          pictures: dict[str, Path]) -> None:
    turns = [Message(Role.USER, "Hello"), Message(Role.ASSISTANT, "Hi!"), Message(Role.USER, "What colour?")]
    ids, _ = vlm_chat.prompt(turns, images=[str(pictures["red"]), str(pictures["blue"])])
    prompt = vlm_chat.tokenizer.decode(ids)
    assert "user\nHello<|im_end|>" in prompt  # the first message is left alone
    last = prompt.split("<|im_start|>user\n")[-1]
    assert last.startswith(VISION) and last.count("<|vision_start|>") == 2 and "<|vision_end|>What colour?" in last
    explicit = [*turns[:2], Message(Role.USER, "<image><image>What colour?")]
    assert vlm_chat.prompt(explicit, images=[str(pictures["red"]), str(pictures["blue"])])[0] == ids


def test_marker_counts_must_match_the_pictures(vlm_chat: ChatModel, pictures: dict[str, Path]) -> None:
    with pytest.raises(UserError, match=r"images: 2 <image> marker\(s\) in the text but 1 file\(s\)"):
        vlm_chat.prompt([Message(Role.USER, "<image><image>Compare.")], images=[str(pictures["red"])])
    with pytest.raises(UserError, match=r"1 <image> marker\(s\) in the text but 0 file\(s\)"):
        vlm_chat.prompt([Message(Role.USER, "<image>What colour?")])  # a marker without a picture
    ids, media = vlm_chat.prompt([Message(Role.USER, "Plain text.")])
    assert media is None and VISION not in vlm_chat.tokenizer.decode(ids)


def test_unreadable_media_are_refused_by_name(vlm_chat: ChatModel, tiny_model_dir: Path, pictures: dict[str, Path]) -> None:
    text_only = load_chat_model(parse_config([f"--model_name_or_path={tiny_model_dir}", "--template=qwen"]))
    assert text_only.media is None and not text_only.reads("images")
    with pytest.raises(UserError, match=f"model '{tiny_model_dir.name}' reads text only, but the conversation has 1 image"):
        text_only.chat([Message(Role.USER, "What colour?")], images=[str(pictures["red"])])
    with pytest.raises(UserError, match="remote media are not fetched"):
        vlm_chat.chat([Message(Role.USER, "What colour?")], images=["https://example.com/cat.png"])
    with pytest.raises(UserError, match="this model takes images, videos, not audios"):
        vlm_chat.chat([Message(Role.USER, "<audio>Listen.")], audios=[b"RIFF"])


def test_the_vllm_request_holds_the_raw_pictures_and_the_unexpanded_prompt(
        vlm_chat: ChatModel, pictures: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from tunelab.infer import vllm_engine

    asked: dict[str, Any] = {}
    fake = types.ModuleType("vllm")
    fake.SamplingParams = lambda **kwargs: kwargs  # type: ignore[attr-defined]
    fake_inputs = types.ModuleType("vllm.inputs")
    fake_inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.inputs", fake_inputs)
    chat_model, spy = spied(vlm_chat, raw_media=True)
    ids, media = chat_model.prompt([Message(Role.USER, "What colour?")], images=[str(pictures["red"])])
    assert media is not None and media.placeholder_ids is not None

    def generate(prompt: Any, params: Any, request_id: str, lora_request: Any = None) -> str:
        asked.update(prompt=prompt, params=params)
        return "results"

    choice = types.SimpleNamespace(text="red", token_ids=[1], finish_reason="stop")
    engine = types.SimpleNamespace(
        llm=types.SimpleNamespace(generate=generate), stop_ids=[151645], lora_request=None,
        iterate=lambda results: iter([types.SimpleNamespace(outputs=[choice], finished=True)]))
    stream = vllm_engine.VllmTextStream(engine, ids, SamplingParams(max_new_tokens=4), media)  # type: ignore[arg-type]
    assert stream.text() == "red" and stream.prompt_tokens == len(ids)
    prompt = asked["prompt"]
    assert set(prompt) == {"prompt_token_ids", "multi_modal_data"}
    text = vlm_chat.tokenizer.decode(prompt["prompt_token_ids"])
    assert text.count("<|image_pad|>") == 1 and "<|vision_start|><|image_pad|><|vision_end|>What colour?" in text
    images = prompt["multi_modal_data"]["image"]
    assert len(images) == 1 and isinstance(images[0], Image.Image) and images[0].size == (56, 56)
    assert asked["params"]["stop_token_ids"] == [151645] and asked["params"]["max_tokens"] == 4
    assert vllm_engine.vllm_prompt([1, 2], None) == {"prompt_token_ids": [1, 2]}  # text prompts as before


def _terminal(chat_model: ChatModel, lines: str, **kwargs: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    assert run_terminal_chat(chat_model, stdin=io.StringIO(lines), stdout=out, stderr=err, interactive=False,
                             **kwargs) == 0
    return out.getvalue(), err.getvalue()


def test_terminal_image_command_attaches_to_the_next_message(vlm_chat: ChatModel, pictures: dict[str, Path]) -> None:
    chat_model, spy = spied(vlm_chat)
    red = pictures["red"]
    out, err = _terminal(chat_model, f"/image {red}\nWhat colour?\nAnd now?\n/image '{pictures['blue']}'\n"
                                     "Compare: <image> this one.\nclear\nNo picture.\nexit\n")
    assert len(spy.calls) == 4 and f"attached image {red}" in err
    media = [call[1] for call in spy.calls]
    pixels = [m.tensors["image_grid_thw"].shape[0] if m else 0 for m in media]
    assert pixels == [1, 1, 2, 0]  # kept for the rest of the conversation, dropped by `clear`
    third = chat_model.tokenizer.decode(spy.calls[2][0])
    assert "user\n<|vision_start|>" in third and "<|vision_end|>What colour?" in third  # where it was attached
    assert "Compare: <|vision_start|>" in third  # a marker the user wrote is where the picture goes


def test_terminal_refusals_keep_the_chat_going(vlm_chat: ChatModel, tiny_model_dir: Path,
                                              pictures: dict[str, Path]) -> None:
    chat_model, spy = spied(vlm_chat)
    out, err = _terminal(chat_model, "/image nowhere.png\n/image\n/audio x.wav\nWhat colour?\n")
    assert "error: /image nowhere.png: no such file" in err and "usage: /image PATH" in err
    assert "/audio: model 'qwen2_vl' cannot take audios: it reads images, videos." in err
    assert len(spy.calls) == 1 and spy.calls[0][1] is None  # nothing was attached
    out, err = _terminal(chat_model, "<image><image>Two?\nOne?\n", attach={"images": [str(pictures["red"])]})
    assert "marker(s) in the text but 1 file(s)" in err and "the attached files were dropped" in err
    assert len(spy.calls) == 2 and spy.calls[-1][1] is None
    text_only = load_chat_model(parse_config([f"--model_name_or_path={tiny_model_dir}", "--template=qwen",
                                              "--max_new_tokens=2"]))
    out, err = _terminal(text_only, f"/image {pictures['red']}\nhi\n")
    assert f"model '{tiny_model_dir.name}' cannot take images: it reads text only." in err and out.endswith("\n")


def test_chat_image_flag_attaches_to_the_first_message(vlm_dir: Path, pictures: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from tunelab.cli.main import main

    config = tmp_path / "chat.yaml"
    config.write_text(f"model_name_or_path: {vlm_dir}\ntemplate: qwen2_vl\ndo_sample: false\nmax_new_tokens: 4\n",
                      encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO("What colour?\n"))
    assert main(["chat", str(config), "--image", str(pictures["red"])]) == 0
    captured = capsys.readouterr()
    assert f"attached image {pictures['red']}" in captured.err
    reference = load_chat_model(parse_config([str(config)]))
    answer = reference.chat([Message(Role.USER, "What colour?")], images=[str(pictures["red"])]).text
    assert captured.out == answer + "\n"
    assert main(["chat", str(config), "--image"]) == 2
    assert "--image needs a file path" in capsys.readouterr().err


def test_pixels_go_to_generate_in_the_models_dtype(vlm_dir: Path, pictures: dict[str, Path]) -> None:
    chat_model = load_chat_model(parse_config([f"--model_name_or_path={vlm_dir}", "--template=qwen2_vl",
                                               "--do_sample=false", "--max_new_tokens=2", "--infer_dtype=bfloat16"]))
    _, media = chat_model.prompt([Message(Role.USER, "What colour?")], images=[str(pictures["red"])])
    assert media is not None and media.tensors["pixel_values"].dtype == torch.float32  # as the processor makes them
    given = chat_model.engine.media_kwargs(media)
    assert given["pixel_values"].dtype == torch.bfloat16 and given["image_grid_thw"].dtype == torch.int64
    assert given.keys() == media.tensors.keys()
    assert chat_model.chat([Message(Role.USER, "What colour?")], images=[str(pictures["red"])]).completion_tokens == 2
