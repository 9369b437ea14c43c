"""The webchat page's picture upload: the picture goes to the model with its message and stays part of the
conversation, the chat shows it, a text-only model says it cannot read it; and in headless Chromium."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _serve_fakes import free_port
from PIL import Image

from tunelab.config.parser import parse_config
from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import Engine, PromptMedia, TextStream
from tunelab.infer.loader import load_chat_model
from tunelab.infer.params import SamplingParams
from tunelab.serve.webchat import respond, respond_with_image
from tunelab.testing_multimodal import tiny_vlm_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


class Spy(Engine):
    """Delegates to the real engine and records every prompt and its media."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.tokenizer, self.stop_ids, self.max_context = inner, inner.tokenizer, inner.stop_ids, inner.max_context
        self.calls: list[tuple[list[int], PromptMedia | None]] = []

    def stream(self, prompt_ids: list[int], params: SamplingParams, media_inputs: PromptMedia | None = None) -> TextStream:
        self.calls.append((prompt_ids, media_inputs))
        return self.inner.stream(prompt_ids, params, media_inputs)


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("webchat-pictures") / "red.png"
    Image.new("RGB", (56, 56), (255, 0, 0)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def vlm_model(tmp_path_factory: pytest.TempPathFactory) -> ChatModel:
    folder = tiny_vlm_path("qwen2_vl", tmp_path_factory.mktemp("webchat-vlm"))
    return load_chat_model(parse_config([f"--model_name_or_path={folder}", "--template=qwen2_vl", "--do_sample=false",
                                         "--max_new_tokens=3"]))


@pytest.fixture
def vlm(vlm_model: ChatModel) -> tuple[ChatModel, Spy]:
    spy = Spy(vlm_model.engine)
    return ChatModel(spy, vlm_model.template, vlm_model.defaults, name="tiny-vlm", media=vlm_model.media), spy


def test_the_picture_goes_with_its_message_and_stays_in_the_conversation(vlm: tuple[ChatModel, Spy],
                                                                         picture: str) -> None:
    chat_model, spy = vlm
    steps = list(respond_with_image(chat_model, "What colour?", [], "", 3, 0.7, 0.0, picture))
    shown, kept, box, image_box = steps[-1]
    assert box == "" and image_box is None  # sent: both boxes emptied
    assert kept[0] == {"role": "user", "content": "What colour?", "images": [picture]}
    assert shown[0]["content"] == [{"type": "file", "file": {"path": picture, "mime_type": "image/png"}},
                                {"type": "text", "text": "What colour?"}]
    first = spy.calls[-1]
    assert first[1] is not None and first[1].tensors["image_grid_thw"].shape[0] == 1
    assert "user\n<|vision_start|><|image_pad|>" in chat_model.tokenizer.decode(first[0])

    list(respond(chat_model, "And now?", kept, "", 3, 0.7, 0.0))  # no new picture: the first one is still sent
    ids, media = spy.calls[-1]
    prompt = chat_model.tokenizer.decode(ids)
    assert media is not None and media.tensors["image_grid_thw"].shape[0] == 1
    assert prompt.count("<|vision_start|>") == 1 and prompt.rstrip().endswith("And now?<|im_end|>\n<|im_start|>assistant")


def test_a_text_only_model_says_it_cannot_read_the_picture(make_chat_model: Any, picture: str) -> None:
    chat_model = make_chat_model()
    shown, kept, box, image_box = list(respond_with_image(chat_model, "What colour?", [], "", 64, 0.7, 0.0, picture))[-1]
    assert shown[-1]["content"].startswith("⚠️ model 'fake-model' reads text only, but the conversation has 1 image")
    assert kept == [] and box == "What colour?" and image_box == picture  # kept, so it can be sent elsewhere
    assert chat_model.engine.started == 0


@pytest.fixture
def page(vlm: tuple[ChatModel, Spy]) -> Iterator[tuple[Any, ChatModel, Spy]]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    from tunelab.serve.webchat import WebchatSettings, launch_webchat

    chat_model, spy = vlm
    demo, url = launch_webchat(chat_model, WebchatSettings(port=free_port()), block=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            tab = browser.new_page()
            tab.goto(url)
            yield tab, chat_model, spy
            browser.close()
    finally:
        demo.close()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_an_uploaded_picture_is_sent_from_the_page(page: tuple[Any, ChatModel, Spy], picture: str) -> None:
    tab, chat_model, spy = page
    tab.locator("#image input[type=file]").set_input_files(picture)
    _wait(lambda: tab.locator("#image img").count() > 0, 20, "the upload's preview")
    query = tab.locator("#query textarea")
    query.fill("What colour?")
    query.press("Enter")
    call = _wait(lambda: spy.calls[-1] if spy.calls else None, 30, "the model to be asked")
    assert call[1] is not None and call[1].tensors["image_grid_thw"].shape[0] == 1
    _wait(lambda: tab.locator('[data-testid="user"] img').count() == 1, 20, "the picture in the chat")
    _wait(lambda: tab.locator("#image img").count() == 0, 20, "the upload box to empty")
    assert "What colour?" in tab.locator('[data-testid="user"]').last.inner_text()
    assert "⚠️" not in tab.locator("#chatbot").inner_text()
