"""The board's Chat tab takes a picture: an upload box wired into both ways of sending, and in headless
Chromium a tiny vision-language model answers a picture while a text-only one says it cannot read it.

The browser part needs Debian's `chromium` and the `playwright` Python package; it skips without them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tunelab.testing import build_tiny_model
from tunelab.testing_multimodal import tiny_vlm_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def test_the_chat_tab_has_a_picture_upload_sent_with_the_message(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from tunelab.webui.app import build_board

    demo = build_board(tmp_path / "saves")
    image = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "chat_image")
    assert type(image).__name__ == "Image" and image.type == "filepath"
    sends = [f for f in demo.fns.values() if image in f.inputs]
    assert len(sends) == 2 and all(image in f.outputs for f in sends)  # Enter and Send; emptied once sent
    assert "image" in demo.tunelab_board.labelled  # follows the language switch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def board(tmp_path: Path) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("gradio")
    pytest.importorskip("playwright.sync_api")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TUNELAB_CACHE": str(tmp_path / "cache")}
    code = "import sys; from tunelab.cli.cmd_webui import main; sys.exit(main(sys.argv[1:]))"
    log = open(tmp_path / "board.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-c", code, "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            return urllib.request.urlopen(url, timeout=1).status == 200
        except OSError:
            assert server.poll() is None, (tmp_path / "board.log").read_text()
            return False

    try:
        _wait(up, 60, "the board to listen")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        log.close()


def _fill(tab: Any, elem_id: str, value: str) -> None:
    box = tab.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def _load(tab: Any, model: Path) -> None:
    tab.locator("#tab_train-button, button[role=tab]:has-text('Train')").first.click()
    _fill(tab, "model_name_or_path", str(model))
    tab.locator("#tab_chat-button, button[role=tab]:has-text('Chat')").first.click()
    tab.locator("#load_model").click()
    _wait(lambda: "Model loaded" in tab.locator("#chat_info").inner_text() and str(model) in
          tab.locator("#chat_info").inner_text(), 90, f"{model.name} to load")


def _send_picture(tab: Any, picture: Path, question: str) -> str:
    before = tab.locator('[data-testid="bot"]').count()
    tab.locator("#chat_image input[type=file]").set_input_files(str(picture))
    _wait(lambda: tab.locator("#chat_image img").count() > 0, 20, "the upload's preview")
    query = tab.locator("#query textarea")
    query.fill(question)
    query.press("Enter")
    _wait(lambda: tab.locator('[data-testid="bot"]').count() > before, 60, "an answer")
    time.sleep(1.0)  # let the (few-token) answer finish streaming
    return tab.locator('[data-testid="bot"]').last.inner_text().strip()


def test_a_picture_goes_from_the_chat_tab_to_the_model(board: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    vlm = tiny_vlm_path("qwen2_vl", tmp_path / "models")
    text_only = build_tiny_model(tmp_path / "models" / "text-only", family="qwen2")
    picture = tmp_path / "red.png"
    Image.new("RGB", (56, 56), (255, 0, 0)).save(picture)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1400})
        tab.goto(board)
        tab.wait_for_selector("#start")
        _load(tab, vlm)
        _fill(tab, "temperature", "0")
        _fill(tab, "max_new_tokens", "3")
        answer = _send_picture(tab, picture, "What colour?")
        assert "⚠️" not in answer
        _wait(lambda: tab.locator('[data-testid="user"] img').count() == 1, 20, "the picture in the chat")
        _wait(lambda: tab.locator("#chat_image img").count() == 0, 20, "the upload box to empty")

        tab.locator("#clear").click()
        _load(tab, text_only)
        answer = _send_picture(tab, picture, "What colour?")
        assert answer.startswith(f"⚠️ model '{text_only.name}' reads text only, but the conversation has 1 image")
        assert tab.locator("#chat_image img").count() == 1  # kept: the message was not sent
        browser.close()
