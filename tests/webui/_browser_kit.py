"""What the board's browser tests share: `tunelab webui` as a process on loopback, headless Chromium
(Debian's, never a playwright download), and the few gestures a user makes on the page."""

from __future__ import annotations

import contextlib
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

from tunelab.webui import runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def need_browser() -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("gradio")
    pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate: Any, timeout: float, what: Any) -> Any:
    """Poll until `predicate()` is truthy; `what` (a string, or a function giving one) explains a timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")


@contextlib.contextmanager
def board_process(work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`tunelab webui` serving `work` (its saves/ land there); every job it started is aborted at the end."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    code = "import sys; from tunelab.cli.cmd_webui import main; sys.exit(main(sys.argv[1:]))"
    log = open(work / "board.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-c", code, "--host", "127.0.0.1", "--port", str(port)], cwd=work,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            return urllib.request.urlopen(url, timeout=1).status == 200
        except OSError:
            assert server.poll() is None, (work / "board.log").read_text()
            return False

    try:
        wait(up, 60, "the board to listen")
        yield url, server
    finally:
        for run in runs.find_runs(work / "saves"):  # never leave a job behind
            runs.abort(run.run_dir, grace_seconds=2)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        log.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def box(tab: Any, elem_id: str) -> Any:
    return tab.locator(f"#{elem_id} input, #{elem_id} textarea").first


def fill(tab: Any, elem_id: str, value: str) -> None:
    field = box(tab, elem_id)
    field.fill(value)
    field.press("Tab")


def pick(tab: Any, elem_id: str, option: str, *, exact: bool = True) -> None:
    tab.locator(f"#{elem_id} input").first.click()
    tab.get_by_role("option", name=option, exact=exact).first.click()
    tab.keyboard.press("Escape")


def open_tab(tab: Any, elem_id: str) -> None:
    tab.locator(f"#{elem_id}-button").first.click()


def shot(tab: Any, folder: Path, name: str, *, full_page: bool = False) -> None:
    """A screenshot in the test's folder, and in $TUNELAB_WEBUI_SHOTS when set (how docs/images is made)."""
    tab.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)
    target = os.environ.get("TUNELAB_WEBUI_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(target) / f"{name}.png"), full_page=full_page)
