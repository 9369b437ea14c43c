"""The webchat page in headless Chromium: type a message, watch the answer stream in.

Needs Debian's `chromium` package and the `playwright` Python package (its own browser downloads
are never used); skips cleanly without them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _serve_fakes import free_port

from tunelab.serve.webchat import WebchatSettings, launch_webchat, respond

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def page(make_chat_model: Any) -> Iterator[tuple[Any, Any]]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    chat_model = make_chat_model(delay=0.04)
    demo, url = launch_webchat(chat_model, WebchatSettings(port=free_port()), block=False)
    assert url.startswith("http://127.0.0.1:")
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            tab = browser.new_page()
            tab.goto(url)
            yield tab, chat_model
            browser.close()
    finally:
        demo.close()


def _answer_snapshots(tab: Any, expected: str, timeout: float = 20) -> list[str]:
    """The last bot message's text, sampled until it equals `expected`."""
    snapshots: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bots = tab.locator('[data-testid="bot"]')
        text = bots.last.inner_text().strip() if bots.count() else ""
        if not snapshots or snapshots[-1] != text:
            snapshots.append(text)
        if text == expected:
            return snapshots
        time.sleep(0.03)
    raise AssertionError(f"the answer never became {expected!r}; saw {snapshots}")


def test_message_streams_into_the_page(page: tuple[Any, Any]) -> None:
    tab, chat_model = page
    tab.locator("#system textarea").fill("Answer in French.")
    query = tab.locator("#query textarea")
    query.fill("hello there")
    query.press("Enter")
    snapshots = _answer_snapshots(tab, "You said: hello there. The end.")
    partial = [s for s in snapshots if s and s != "You said: hello there. The end."]
    assert partial and all("You said: hello there. The end.".startswith(s) for s in partial)  # it streamed
    assert "<|im_start|>system\nAnswer in French.<|im_end|>" in chat_model.engine.last_prompt
    assert tab.locator('[data-testid="user"]').last.inner_text().strip() == "hello there"
    assert query.input_value() == ""

    tab.locator("#max_new_tokens input[type=number]").fill("3")
    tab.locator("#max_new_tokens input[type=number]").press("Enter")
    query.fill("again")
    tab.locator("#send").click()
    _answer_snapshots(tab, "You said:")
    assert chat_model.engine.last_params.max_new_tokens == 3
    assert "hello there. The end.<|im_end|>" in chat_model.engine.last_prompt  # the history was sent


def test_respond_keeps_history_only_for_finished_answers(make_chat_model: Any) -> None:
    chat_model = make_chat_model()
    steps = list(respond(chat_model, "hi", [], "", 64, 0.7, 0.0))
    shown, kept, box = steps[-1]
    assert shown[-1] == {"role": "assistant", "content": "You said: hi. The end."} and kept == shown and box == ""
    assert steps[0][1] == []  # while streaming, the kept history is unchanged
    assert list(respond(chat_model, "   ", kept, "", 64, 0.7, 0.0)) == [(kept, kept, "   ")]
