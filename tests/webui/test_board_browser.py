"""The board in headless Chromium, end to end: pick the bundled demo data and the tiny model, start a
short run, reload the page mid-run, watch the same run finish with a loss curve, then chat with the
result. Screenshots land in the test's tmp dir (and in $TUNELAB_WEBUI_SHOTS when set, for the docs).

Needs Debian's `chromium` and the `playwright` Python package (never its own browser downloads);
skips cleanly without them.
"""

from __future__ import annotations

import json
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
MAX_STEPS = 20


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
def board(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`tunelab webui` as a process on loopback, in an empty working folder."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("gradio")
    pytest.importorskip("playwright.sync_api")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
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
        yield url, tmp_path
    finally:
        for run in runs.find_runs(tmp_path / "saves"):  # never leave a job behind
            runs.abort(run.run_dir, grace_seconds=2)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        log.close()


def _fill(tab: Any, elem_id: str, value: str) -> None:
    box = tab.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def _pick(tab: Any, elem_id: str, option: str) -> None:
    tab.locator(f"#{elem_id} input").first.click()
    tab.get_by_role("option", name=option, exact=True).click()
    tab.keyboard.press("Escape")


def _shot(tab: Any, tmp_path: Path, name: str) -> None:
    tab.screenshot(path=str(tmp_path / f"{name}.png"))
    target = os.environ.get("TUNELAB_WEBUI_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(target) / f"{name}.png"))


def test_train_reload_finish_and_chat(board: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, work = board
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1400})
        tab.goto(url)
        tab.wait_for_selector("#start")

        # the tiny model and the bundled demo data
        _fill(tab, "model_name_or_path", "tunelab/tiny-chat")
        _pick(tab, "finetuning_type", "full")
        tab.locator("#dataset .remove-all").click()
        _pick(tab, "dataset", "identity")
        tab.locator("#preview_data").click()
        _wait(lambda: "identity" in tab.locator("#data_preview").inner_text(), 20, "the data preview")
        preview = tab.locator("#data_preview").inner_text()
        assert "80 rows" in preview and "instruction" in preview
        for elem_id, value in (("learning_rate", "0.003"), ("max_steps", str(MAX_STEPS)), ("logging_steps", "1"),
                               ("save_steps", "1000"), ("cutoff_len", "128"), ("per_device_train_batch_size", "8"),
                               ("gradient_accumulation_steps", "1"), ("warmup_steps", "0")):
            _fill(tab, elem_id, value)
        tab.locator("#preview").click()
        _wait(lambda: "max_steps: 20" in tab.locator("#yaml_box").inner_text(), 20, "the YAML preview")
        yaml_text = tab.locator("#yaml_box").inner_text()
        for line in ("model_name_or_path: tunelab/tiny-chat", "finetuning_type: full", "dataset: identity",
                     "learning_rate: 0.003", "logging_steps: 1", "template: chatml"):
            assert line in yaml_text, (line, yaml_text)
        assert tab.locator("#command_box textarea").input_value().startswith("tunelab train ")
        _shot(tab, work, "webui_train")

        tab.locator("#start").click()
        _wait(lambda: "Started" in tab.locator("#train_status").inner_text(), 60, "the run to start")
        run_dir = _wait(lambda: [r for r in runs.find_runs(work / "saves")], 20, "the run registry")[0].run_dir
        assert runs.read_run(run_dir).status == "running"

        # reload while the job runs: it must not stop, and the page must find it again
        _wait(lambda: "running" in tab.locator("#train_progress").inner_text(), 30, "the live view")
        tab.reload()
        tab.wait_for_selector("#start")
        assert runs.read_run(run_dir).status in ("running", "finished")
        _wait(lambda: tab.locator("#run input").input_value() == run_dir, 20, "the page to reattach")
        _wait(lambda: "finished" in tab.locator("#train_progress").inner_text(), 120,
              f"the run to finish ({runs.tail(Path(run_dir) / runs.LOG_FILE)})")
        progress = tab.locator("#train_progress").inner_text()
        assert f"{MAX_STEPS}/{MAX_STEPS} (100.0%)" in progress and "loss" in progress
        _wait(lambda: tab.locator("#loss_plot canvas, #loss_plot svg.marks").count() > 0, 20, "the loss curve")
        _wait(lambda: "train_runtime" in tab.locator("#log_box textarea").input_value() or
              "train" in tab.locator("#log_box textarea").input_value(), 10, "the log lines")
        tab.locator("#loss_plot").scroll_into_view_if_needed()
        _shot(tab, work, "webui_progress")

        rows = runs.read_trainer_log(run_dir)
        assert [r["step"] for r in rows if "loss" in r][-1] == MAX_STEPS
        assert rows[-1]["total_steps"] == MAX_STEPS
        out = Path(run_dir)
        assert (out / "training_loss.png").is_file() and (out / "config.json").is_file()
        assert json.loads((out / "train_results.json").read_text())["train_loss"] > 0
        assert runs.read_run(run_dir).status == "finished"

        # chat with the trained model
        tab.locator("#refresh_checkpoints").click()
        _pick(tab, "checkpoint_path", run_dir)
        tab.locator("#tab_chat-button, button[role=tab]:has-text('Chat')").first.click()
        _fill(tab, "temperature", "0")
        _fill(tab, "max_new_tokens", "24")
        tab.locator("#load_model").click()
        _wait(lambda: "Model loaded" in tab.locator("#chat_info").inner_text(), 60, "the model to load")
        assert run_dir in tab.locator("#chat_info").inner_text()
        query = tab.locator("#query textarea")
        query.fill("Who are you?")
        query.press("Enter")
        answer = _wait(lambda: tab.locator('[data-testid="bot"]').count() and
                       tab.locator('[data-testid="bot"]').last.inner_text().strip(), 60, "an answer")
        assert tab.locator('[data-testid="user"]').last.inner_text().strip() == "Who are you?"
        assert len(answer) > 0
        _shot(tab, work, "webui_chat")
        browser.close()
