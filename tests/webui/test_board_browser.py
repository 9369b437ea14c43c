"""The board in headless Chromium, end to end: pick the bundled demo data and the tiny model, start a
short run, reload the page mid-run, watch the same run finish with a loss curve, then chat with the
result. Screenshots land in the test's tmp dir (and in $TUNELAB_WEBUI_SHOTS when set, for the docs).

Needs Debian's `chromium` and the `playwright` Python package (never its own browser downloads);
skips cleanly without them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _browser_kit import board_process, chromium, fill, need_browser, pick, shot, wait

from tunelab.webui import runs
from tunelab.webui.i18n import text

MAX_STEPS = 20


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`tunelab webui` as a process on loopback, in an empty working folder."""
    need_browser()
    with board_process(tmp_path) as (url, _server):
        yield url, tmp_path


def test_train_reload_finish_and_chat(board: tuple[str, Path]) -> None:
    url, work = board
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1280, "height": 1400})
        tab.goto(url)
        tab.wait_for_selector("#start")

        # the tiny model and the bundled demo data
        fill(tab, "model_name_or_path", "tunelab/tiny-chat")
        pick(tab, "finetuning_type", "full")
        tab.locator("#dataset .remove-all").click()
        pick(tab, "dataset", "identity")
        tab.locator("#preview_data").click()
        wait(lambda: "identity" in tab.locator("#data_preview").inner_text(), 20, "the data preview")
        preview = tab.locator("#data_preview").inner_text()
        assert "80 rows" in preview and "instruction" in preview
        for elem_id, value in (("learning_rate", "0.003"), ("max_steps", str(MAX_STEPS)), ("logging_steps", "1"),
                               ("save_steps", "1000"), ("cutoff_len", "128"), ("per_device_train_batch_size", "8"),
                               ("gradient_accumulation_steps", "1"), ("warmup_steps", "0")):
            fill(tab, elem_id, value)
        tab.locator("#preview").click()
        wait(lambda: "max_steps: 20" in tab.locator("#yaml_box").inner_text(), 20, "the YAML preview")
        yaml_text = tab.locator("#yaml_box").inner_text()
        for line in ("model_name_or_path: tunelab/tiny-chat", "finetuning_type: full", "dataset: identity",
                     "learning_rate: 0.003", "logging_steps: 1", "template: chatml"):
            assert line in yaml_text, (line, yaml_text)
        assert tab.locator("#command_box textarea").input_value().startswith("tunelab train ")
        shot(tab, work, "webui_train")

        tab.locator("#start").click()
        wait(lambda: "Started" in tab.locator("#train_status").inner_text(), 60, "the run to start")
        run_dir = wait(lambda: [r for r in runs.find_runs(work / "saves")], 20, "the run registry")[0].run_dir
        assert runs.read_run(run_dir).status == "running"

        # reload while the job runs: it must not stop, and the page must find it again
        wait(lambda: "running" in tab.locator("#train_progress").inner_text(), 30, "the live view")
        tab.reload()
        tab.wait_for_selector("#start")
        assert runs.read_run(run_dir).status in ("running", "finished")
        wait(lambda: tab.locator("#run input").input_value().startswith(f"{Path(run_dir).name} · "), 20,
              "the page to reattach")  # the picker shows the run's name, status, step and start time
        wait(lambda: "finished" in tab.locator("#train_progress").inner_text(), 120,
              f"the run to finish ({runs.tail(Path(run_dir) / runs.LOG_FILE)})")
        progress = tab.locator("#train_progress").inner_text()
        assert f"{MAX_STEPS}/{MAX_STEPS} (100.0%)" in progress and "loss" in progress
        wait(lambda: tab.locator("#loss_plot canvas, #loss_plot svg.marks").count() > 0, 20, "the loss curve")
        wait(lambda: "train_runtime" in tab.locator("#log_box textarea").input_value() or
              "train" in tab.locator("#log_box textarea").input_value(), 10, "the log lines")
        tab.locator("#loss_plot").scroll_into_view_if_needed()
        shot(tab, work, "webui_progress")

        rows = runs.read_trainer_log(run_dir)
        assert [r["step"] for r in rows if "loss" in r][-1] == MAX_STEPS
        assert rows[-1]["total_steps"] == MAX_STEPS
        out = Path(run_dir)
        assert (out / "training_loss.png").is_file() and (out / "config.json").is_file()
        assert json.loads((out / "train_results.json").read_text())["train_loss"] > 0
        assert runs.read_run(run_dir).status == "finished"

        # chat with the trained model
        tab.locator("#refresh_checkpoints").click()
        pick(tab, "checkpoint_path", f"{Path(run_dir).name} · {text('status_finished', 'en')}", exact=False)
        tab.locator("#tab_chat-button, button[role=tab]:has-text('Chat')").first.click()
        fill(tab, "temperature", "0")
        fill(tab, "max_new_tokens", "24")
        tab.locator("#load_model").click()
        wait(lambda: "Model loaded" in tab.locator("#chat_info").inner_text(), 60, "the model to load")
        assert run_dir in tab.locator("#chat_info").inner_text()
        query = tab.locator("#query textarea")
        query.fill("Who are you?")
        query.press("Enter")
        answer = wait(lambda: tab.locator('[data-testid="bot"]').count() and
                       tab.locator('[data-testid="bot"]').last.inner_text().strip(), 60, "an answer")
        assert tab.locator('[data-testid="user"]').last.inner_text().strip() == "Who are you?"
        assert len(answer) > 0
        shot(tab, work, "webui_chat")
