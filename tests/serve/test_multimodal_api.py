"""`image_url` (and `video_url`, `input_audio`) parts through the official `openai` client: a data URL, a path
and a file:// URL reach the model as the same picture, at the part's place in the text; a remote URL, a
missing file, media outside user messages and media a model cannot read are 400s naming the part."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tunelab.config.parser import parse_config
from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import Engine, PromptMedia, TextStream
from tunelab.infer.loader import load_chat_model
from tunelab.infer.params import SamplingParams
from tunelab.testing_multimodal import tiny_vlm_path

openai = pytest.importorskip("openai")


class Spy(Engine):
    """Delegates to the real engine and records every prompt and its media."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.tokenizer, self.stop_ids, self.max_context = inner, inner.tokenizer, inner.stop_ids, inner.max_context
        self.calls: list[tuple[list[int], PromptMedia | None]] = []

    def stream(self, prompt_ids: list[int], params: SamplingParams, media_inputs: PromptMedia | None = None) -> TextStream:
        self.calls.append((prompt_ids, media_inputs))
        return self.inner.stream(prompt_ids, params, media_inputs)


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-pictures") / "red.png"
    Image.new("RGB", (56, 56), (255, 0, 0)).save(path)
    return path


@pytest.fixture(scope="module")
def vlm_model(tmp_path_factory: pytest.TempPathFactory) -> ChatModel:
    folder = tiny_vlm_path("qwen2_vl", tmp_path_factory.mktemp("api-vlm"))
    return load_chat_model(parse_config([f"--model_name_or_path={folder}", "--template=qwen2_vl", "--do_sample=false",
                                         "--max_new_tokens=4"]))


@pytest.fixture
def vlm(vlm_model: ChatModel, serve: Any) -> Iterator[tuple[Any, Spy]]:
    spy = Spy(vlm_model.engine)
    chat_model = ChatModel(spy, vlm_model.template, vlm_model.defaults, name="tiny-vlm", media=vlm_model.media)
    live = serve(chat_model)
    yield openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0, timeout=60), spy


def _ask(client: Any, *parts: dict[str, Any], **extra: Any) -> Any:
    return client.chat.completions.create(model="any", messages=[{"role": "user", "content": list(parts)}], **extra)


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def test_a_picture_goes_where_its_part_stands(vlm: tuple[Any, Spy], picture: Path) -> None:
    client, spy = vlm
    data_url = "data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode()
    reply = _ask(client, _text("Look: "), _image(data_url), _text(" What colour?"))
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.prompt_tokens == len(spy.calls[0][0])
    prompt = spy.tokenizer.decode(spy.calls[0][0])
    assert "user\nLook: <|vision_start|><|image_pad|>" in prompt and "<|vision_end|> What colour?<|im_end|>" in prompt
    media = spy.calls[0][1]
    assert media is not None and media.tensors["image_grid_thw"].tolist() == [[1, 4, 4]]  # 56 px / 14 px patches
    answers = {reply.choices[0].message.content}
    for url in (str(picture), picture.as_uri()):  # a path on the server, a file:// URL: the same picture
        answers.add(_ask(client, _text("Look: "), _image(url), _text(" What colour?")).choices[0].message.content)
        assert spy.calls[-1][0] == spy.calls[0][0]
        assert (spy.calls[-1][1].tensors["pixel_values"] == media.tensors["pixel_values"]).all()
    assert len(answers) == 1
    chunks = list(_ask(client, _image(str(picture)), _text(" What colour?"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        _ask(client, _image(str(picture)), _text(" What colour?")).choices[0].message.content
    assert spy.calls[-1][1] is not None and spy.calls[-2][1] is not None


def _refused(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    assert caught.value.status_code == 400
    body = caught.value.body
    return body.get("error", body) if isinstance(body, dict) else {}


def test_remote_urls_and_missing_files_are_400s_naming_the_part(vlm: tuple[Any, Spy], picture: Path) -> None:
    client, spy = vlm
    error = _refused(lambda: _ask(client, _text("What is it?"), _image("https://example.com/cat.png")))
    assert error["type"] == "invalid_request_error" and error["param"] == "messages.0.content.1"
    assert error["message"].startswith("messages[0].content[1].image_url: https://example.com/cat.png: this server "
                                       "does not fetch remote URLs")
    assert "data:image/png;base64" in error["message"]
    error = _refused(lambda: _ask(client, _image(str(picture.parent / "nowhere.png"))))
    assert "no such file on the server" in error["message"] and error["param"] == "messages.0.content.0"
    error = _refused(lambda: _ask(client, _image("data:image/png;base64,@@@")))
    assert "not valid base64" in error["message"]
    error = _refused(lambda: client.chat.completions.create(model="any", messages=[
        {"role": "system", "content": [_image(str(picture))]}, {"role": "user", "content": "hi"}]))
    assert error["message"] == "messages[0].content[0]: image_url parts are accepted in user messages only."
    error = _refused(lambda: _ask(client, {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                                  _text("Listen.")))
    assert error["message"].startswith("messages[0].content[0]: model 'tiny-vlm' cannot read audios "
                                       "(it reads text and images, videos)")
    error = _refused(lambda: _ask(client, _image(str(picture)), _text("<image> twice?")))
    assert "2 <image> marker(s) in the text but 1 file(s)" in error["message"]
    assert spy.calls == []  # nothing reached the engine


def test_a_text_only_model_refuses_pictures_naming_itself(make_chat_model: Any, serve: Any, picture: Path) -> None:
    live = serve(make_chat_model())
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0, timeout=30)
    error = _refused(lambda: _ask(client, _text("What colour?"), _image(str(picture))))
    assert error["type"] == "invalid_request_error" and error["param"] == "messages.0.content.1"
    assert error["message"] == ("messages[0].content[1]: model 'fake-model' cannot read images (it reads text only); "
                                "send text, or serve a multimodal model (docs/multimodal.md).")
    reply = _ask(client, _text("hello"))  # text parts still work
    assert reply.choices[0].message.content == "You said: hello. The end."
