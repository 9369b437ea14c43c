"""Issue 22 in headless Chromium, as a user drives the board: nothing the user did not set reaches the
YAML (every settings group opened), every mistake is refused before anything starts, one run per
folder, the log boxes follow the newest line, a failed job shows its error, Preview names the folder
Start uses, aborted runs resume from a checkpoint, finished jobs leave no zombie, and no label is cut
at 1024, 1280 or 1920 px in either language. One board process serves the whole module.

With $TUNELAB_WEBUI_SHOTS set, the screenshots of docs/webui.md are written there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _browser_kit import board_process, box, chromium, fill, need_browser, open_tab, pick, shot, wait

from tunelab.webui import runs
from tunelab.webui.i18n import text

GROUPS = ("group_lora", "group_freeze", "group_pref", "group_extra")
TABS = ("tab_train", "tab_eval", "tab_chat", "tab_export")
# Every visible piece of text that is a label, a button or a tab title, and whether it is cut off.
CLIPPED_JS = """() => {
  const out = [];
  const sel = '[data-testid="block-info"], label, label span, button:not(.label-wrap), .label-wrap span, [role=tab]';
  for (const el of document.querySelectorAll(sel)) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    if (el.scrollWidth > el.clientWidth + 1) out.push(`${el.textContent.trim()} (${el.scrollWidth} > ${el.clientWidth})`);
  }
  return out;
}"""
SCROLLED_DOWN_JS = """(id) => { const t = document.querySelector(`#${id} textarea`);
  return t && t.scrollHeight > t.clientHeight && t.scrollTop + t.clientHeight >= t.scrollHeight - 2; }"""


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    need_browser()
    work = tmp_path_factory.mktemp("board")
    with board_process(work) as (url, server):
        yield url, work, server.pid


@pytest.fixture(scope="module")
def browser(board: Any) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(board: tuple[str, Path, int], browser: Any) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": 1280, "height": 1200})
    tab.goto(board[0])
    tab.wait_for_selector("#start")
    yield tab
    tab.close()


def _status(tab: Any, elem_id: str) -> str:
    return tab.locator(f"#{elem_id}").inner_text()


def _open_groups(tab: Any) -> None:
    for group in GROUPS:
        tab.locator(f"#{group} .label-wrap").first.click()
    wait(lambda: tab.locator("#lora_alpha").is_visible() and tab.locator("#pref_beta").is_visible(), 10, "the groups")


def _started_command(tab: Any, status_id: str) -> str:
    shown = wait(lambda: re.search(r"Started: (tunelab \w+ \S+)", _status(tab, status_id)), 60,
                 lambda: f"the job to start ({_status(tab, status_id)})")
    return shown.group(1)


def _zombies_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = runs._proc_stat(int(entry.name))
            if stat and stat[0] == "Z" and stat[1] == str(pid):
                found.append(int(entry.name))
    return found


def test_no_label_is_cut_at_any_width_in_either_language(board: tuple[str, Path, int], browser: Any) -> None:
    url, work, _ = board
    for lang in ("en", "zh"):
        tab = browser.new_page(viewport={"width": 1920, "height": 1000})
        tab.goto(url)
        tab.wait_for_selector("#start")
        if lang == "zh":
            pick(tab, "ui_lang", "中文")
            wait(lambda tab=tab: tab.locator("#start").inner_text() == text("start", "zh"), 10, "the switch")
        _open_groups(tab)
        for width in (1920, 1280, 1024):
            tab.set_viewport_size({"width": width, "height": 1000})
            for tab_id in (*TABS[1:], TABS[0]):
                open_tab(tab, tab_id)
                tab.wait_for_timeout(150)
                assert tab.evaluate(CLIPPED_JS) == [], (lang, width, tab_id)
            if os.environ.get("TUNELAB_WEBUI_SHOTS"):
                shot(tab, work, f"webui_{lang}_{width}", full_page=True)
        tab.close()


def test_every_mistake_is_refused_before_anything_starts(board: tuple[str, Path, int], page: Any) -> None:
    _, work, _ = board
    tab = page
    _open_groups(tab)

    def refused(status_id: str, button: str, expected: str) -> str:
        tab.locator(f"#{button}").click()
        wait(lambda: expected in _status(tab, status_id), 30, lambda: f"{expected!r} in {_status(tab, status_id)!r}")
        return _status(tab, status_id)

    for elem_id, bad, good, expected in (
        ("model_name_or_path", "/nonexistent/model", "tunelab/tiny-chat",
         "model_name_or_path: '/nonexistent/model' is not an existing folder"),
        ("learning_rate", "-5", "5e-05", "learning_rate: -5.0 is out of range"),
        ("per_device_train_batch_size", "0", "8", "per_device_train_batch_size: 0 is out of range"),
        ("lora_alpha", "0", "", "lora_alpha: 0 is out of range"),
        ("template", "nosuch", "chatml", "template: unknown template 'nosuch'"),
    ):
        fill(tab, elem_id, bad)
        assert "board settings" in refused("train_status", "start", expected)
        fill(tab, elem_id, good)
    # text in a number box: said under the field at once, and Start names it
    fill(tab, "learning_rate", "abc")
    wait(lambda: "is not a number" in tab.locator("#learning_rate").inner_text(), 10, "the error under the field")
    refused("train_status", "start", "Learning rate (learning_rate): 'abc' is not a number")
    fill(tab, "learning_rate", "5e-05")
    wait(lambda: "is not a number" not in tab.locator("#learning_rate").inner_text(), 10, "the error to go")
    pick(tab, "stage", "dpo")
    refused("train_status", "start", "is not preference data")
    pick(tab, "stage", "sft")
    tab.locator("#dataset .remove-all").click()
    message = refused("train_status", "start", "no dataset is given")
    assert "tunelab_webui_check" not in message and ".yaml" not in message
    pick(tab, "dataset", "identity")

    open_tab(tab, "tab_export")
    fill(tab, "export_dir", "/etc/passwd")
    refused("export_status", "export_start", "export_dir: '/etc/passwd' is a file")
    fill(tab, "export_dir", str(work / "never"))
    pick(tab, "export_quantization_bit", "4")
    refused("export_status", "export_start", "export_quantization_bit: 4 (GPTQ) needs a CUDA GPU")
    pick(tab, "export_quantization_bit", "none")
    assert runs.find_runs(work / "saves") == [] and not (work / "never").exists()


def test_a_lora_run_with_every_group_opened_learns_resumes_and_guards_its_folder(
        board: tuple[str, Path, int], page: Any) -> None:
    _, work, _ = board
    tab = page
    _open_groups(tab)
    settings = {"learning_rate": "0.001", "max_steps": "30", "logging_steps": "1", "save_steps": "5",
                "cutoff_len": "128"}
    for elem_id, value in settings.items():
        fill(tab, elem_id, value)
    tab.locator("#preview").click()
    previewed = wait(lambda: box(tab, "command_box").input_value(), 20, "the previewed command")
    assert "lora_alpha" not in tab.locator("#yaml_box").inner_text()
    tab.wait_for_timeout(1100)  # a folder named now would differ from the previewed one
    tab.locator("#start").click()
    command = _started_command(tab, "train_status")
    assert command == previewed  # the folder and command Preview showed are the ones Start used
    run_dir = Path(command.split()[-1]).parent
    written = yaml.safe_load((run_dir / runs.job_yaml_name("train")).read_text())
    assert written == {"do_train": True, "plot_loss": True, "report_to": "none",
                       "model_name_or_path": "tunelab/tiny-chat", "template": "chatml", "dataset": "identity",
                       "learning_rate": 0.001, "max_steps": 30, "cutoff_len": 128, "logging_steps": 1,
                       "save_steps": 5, "output_dir": written["output_dir"]}
    assert (work / written["output_dir"]).resolve() == run_dir  # relative to the board's folder

    fill(tab, "output_dir", str(run_dir))  # a second Start into the folder of the live run
    tab.locator("#start").click()
    wait(lambda: "is still running there" in _status(tab, "train_status"), 30, "the refusal of a busy folder")
    fill(tab, "output_dir", "")
    assert [r.run_dir for r in runs.find_runs(work / "saves")] == [str(run_dir)]

    wait(lambda: tab.evaluate(SCROLLED_DOWN_JS, "log_box"), 60,
         lambda: f"the log box at its newest line ({tab.evaluate(SCROLLED_DOWN_JS, 'log_box')})")
    wait(lambda: any(r.get("step", 0) >= 8 for r in runs.read_trainer_log(run_dir)), 120, "step 8")
    tab.locator("#abort").click()
    wait(lambda: "Aborted" in _status(tab, "train_status"), 60, "the abort")
    assert runs.read_run(run_dir).status == "aborted"
    saved = wait(lambda: tab.locator("#resume_checkpoint input").input_value(), 20, "the checkpoints to resume from")
    assert saved.startswith("checkpoint-") and (run_dir / saved).is_dir()
    assert "aborted" in tab.locator("#run input").input_value()
    tab.locator("#resume").click()
    wait(lambda: "Resumed" in _status(tab, "train_status"), 60, "the resume")
    wait(lambda: "finished" in _status(tab, "train_progress"), 180,
         lambda: f"the resumed run to finish ({runs.tail(run_dir / runs.LOG_FILE)})")
    assert yaml.safe_load((run_dir / runs.job_yaml_name("train")).read_text())["resume_from_checkpoint"] == \
        str(run_dir / saved)
    losses = [r["loss"] for r in runs.read_trainer_log(run_dir) if "loss" in r]
    steps = [r["step"] for r in runs.read_trainer_log(run_dir) if "loss" in r]
    assert steps[-1] == 30 and losses[-1] < losses[0] - 0.1, losses  # it learns: no LoRA alpha / LoRA+ ratio 0
    wait(lambda: "finished · step 30/30" in tab.locator("#run input").input_value(), 10, "the run picker label")
    tab.locator("#refresh_checkpoints").click()
    tab.locator("#checkpoint_path input").first.click()
    wait(lambda: tab.get_by_role("option", name=f"{run_dir.name}/checkpoint-", exact=False).count() > 0, 10,
         "the run's checkpoints in the top bar")
    tab.keyboard.press("Escape")
    tab.locator("#loss_plot").scroll_into_view_if_needed()
    shot(tab, work, "webui_resumed")


def test_eval_and_export_jobs_keep_their_preview_show_errors_and_leave_no_zombie(
        board: tuple[str, Path, int], page: Any) -> None:
    _, work, server_pid = board
    tab = page
    open_tab(tab, "tab_eval")
    pick(tab, "eval_dataset", "identity")
    fill(tab, "eval_max_samples", "4")
    fill(tab, "eval_max_new_tokens", "8")
    tab.locator("#eval_preview").click()
    previewed = wait(lambda: box(tab, "eval_command").input_value(), 20, "the eval preview")
    tab.wait_for_timeout(3000)  # the 2-second refresh must not wipe it
    assert box(tab, "eval_command").input_value() == previewed and "save_dir:" in tab.locator("#eval_yaml").inner_text()
    tab.locator("#eval_start").click()
    assert _started_command(tab, "eval_status") == previewed

    open_tab(tab, "tab_export")
    fill(tab, "export_dir", str(work / "exported"))
    tab.locator("#export_preview").click()
    previewed = wait(lambda: box(tab, "export_command").input_value(), 20, "the export preview")
    tab.wait_for_timeout(1100)
    tab.locator("#export_start").click()
    assert _started_command(tab, "export_status") == previewed
    fill(tab, "export_dir", str(work / "pushed"))
    fill(tab, "export_hub_model_id", "someone/tiny")  # the hub is offline here: the job fails at its end
    tab.locator("#export_start").click()
    wait(lambda: "failed" in _status(tab, "export_progress"), 180,
         lambda: f"the push to fail ({_status(tab, 'export_progress')})")
    assert "error: tunelab export: error: export_hub_model_id=someone/tiny: the hub is offline" in \
        _status(tab, "export_progress")
    wait(lambda: tab.evaluate(SCROLLED_DOWN_JS, "export_log"), 10, "the export log at its newest line")
    assert "the hub is offline" in box(tab, "export_log").input_value().splitlines()[-1]

    ended = wait(lambda: (found := runs.find_runs(work / "saves", "eval") + runs.find_runs(work / "saves", "export"))
                 and all(r.status != "running" for r in found) and found, 180, "the eval and export jobs to end")
    assert sorted(r.status for r in ended) == ["failed", "finished", "finished"], [r.run_dir for r in ended]
    assert (work / "exported" / "config.json").is_file()
    wait(lambda: _zombies_of(server_pid) == [], 10, lambda: f"no zombie under the board ({_zombies_of(server_pid)})")
    open_tab(tab, "tab_eval")
    wait(lambda: "finished" in _status(tab, "eval_progress"), 20, "the eval result")
