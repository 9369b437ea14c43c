"""Issue 22, the board's side without a browser: every Start runs `tunelab check`'s code first and refuses
with the key named (never a scratch file), one run per output folder, Preview plans exactly what Start
runs, finished jobs are reaped, a failed job says why, aborted runs can be resumed from a checkpoint."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.errors import UserError
from tunelab.webui import jobs, runs
from tunelab.webui.i18n import texts
from tunelab.webui.progress import error_line, progress_markdown, run_label

QUICK = "max_steps: 1"

# (job, field values, text the refusal must hold): the mistakes of issue 22's point 4, each refused
# before anything starts.
REFUSED = [
    ("train", {"learning_rate": "-5"}, "learning_rate: -5.0 is out of range"),
    ("train", {"per_device_train_batch_size": "0"}, "per_device_train_batch_size: 0 is out of range"),
    ("train", {"lora_alpha": "0"}, "lora_alpha: 0 is out of range"),
    ("train", {"loraplus_lr_ratio": "0"}, "loraplus_lr_ratio: 0.0 is out of range"),
    ("train", {"model_name_or_path": "/nonexistent/model"}, "model_name_or_path: '/nonexistent/model' is not an"),
    ("train", {"stage": "dpo"}, "is not preference data"),
    ("train", {"stage": "rm"}, "is not preference data"),
    ("train", {"stage": "kto"}, "kto_tag"),
    ("train", {"stage": "ppo"}, "reward_model"),
    ("train", {"template": "nosuch"}, "template: unknown template 'nosuch'"),
    ("train", {"dataset": []}, "no dataset is given"),
    ("train", {"learning_rate": "abc"}, "Learning rate (learning_rate): 'abc' is not a number"),
    ("eval", {"eval_dataset": ["identity"], "template": "nosuch"}, "template: unknown template 'nosuch'"),
    ("export", {"export_dir": "/etc/passwd"}, "export_dir: '/etc/passwd' is a file"),
    ("export", {"export_quantization_bit": "4"}, "export_quantization_bit: 4 (GPTQ) needs a CUDA GPU"),
]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def quick_jobs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Jobs run `python -c` instead of tunelab (the checks before them are the real ones); returns the
    YAML files they were given."""
    given: list[Path] = []

    def argv(kind: str, yaml_path: Path) -> list[str]:
        given.append(yaml_path)
        return [sys.executable, "-c", "pass"]

    monkeypatch.setattr(runs, "job_argv", argv)
    return given


@pytest.mark.parametrize(("job", "values", "expected"), REFUSED, ids=[f"{j}-{'-'.join(v)}" for j, v, _ in REFUSED])
def test_every_start_refuses_a_mistake_before_launching(job: str, values: dict[str, Any], expected: str,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "saves"
    values = {"output_dir": str(tmp_path / "never"), "export_dir": str(tmp_path / "exported"), **values}
    with pytest.raises(UserError) as caught:
        jobs.start_job(job, values, QUICK if job == "train" else None, root)
    message = caught.value.message
    assert expected in message, message
    assert "tunelab_webui_check" not in message and "/tmp/tunelab_webui" not in message  # no internal file named
    assert not (tmp_path / "never").exists() and not (root / "jobs").exists()
    assert runs.find_runs(root) == []


def test_loading_a_chat_model_runs_the_same_check(tmp_path: Path) -> None:
    from tunelab.webui.tab_chat import ChatHolder

    holder = ChatHolder()
    with pytest.raises(UserError, match="model_name_or_path: '/nonexistent/model' is not an existing folder"):
        holder.load({"model_name_or_path": "/nonexistent/model"})
    with pytest.raises(UserError, match="template: unknown template 'nosuch'"):
        holder.load({"template": "nosuch"})
    assert holder.model is None


def test_a_run_folder_without_weights_is_one_translated_message(tmp_path: Path) -> None:
    """Issue 22: an aborted run picked in the top bar gave `ValueError: Can't find 'adapter_config.json'`."""
    from tunelab.webui.tab_chat import ChatHolder, weightless_run

    run = tmp_path / "train_aborted"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "checkpoint-4" / "adapter_config.json").write_text("{}")
    (run / "checkpoint-x").mkdir()
    message = weightless_run(str(run), "en")
    assert message.startswith(f"{run} holds no trained weights") and "(checkpoint-4)" in message
    assert "没有训练好的权重" in weightless_run(str(run), "zh")
    assert weightless_run(str(run / "checkpoint-4"), "en") is None and weightless_run(None, "en") is None
    with pytest.raises(UserError, match="holds no trained weights"):
        ChatHolder().load({"checkpoint_path": str(run)})


def test_a_second_start_into_a_busy_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One run per output folder: the board's registry says a run is live there, or `tunelab train`'s lock does."""
    monkeypatch.setattr(runs, "job_argv", lambda kind, path: [sys.executable, "-c", "import time; time.sleep(60)"])
    root, out = tmp_path / "saves", tmp_path / "run"
    values = {"output_dir": str(out)}
    first = jobs.start_job("train", values, QUICK, root)
    try:
        with pytest.raises(UserError) as caught:
            jobs.start_job("train", values, QUICK, root)
        assert caught.value.message.startswith(f"output_dir {out}: a run started from this board is still running")
        assert f"pid {first.pid}" in caught.value.message
        with pytest.raises(UserError, match="本面板启动的运行仍在进行"):
            jobs.start_job("train", values, QUICK, root, lang="zh")
        assert json.loads((out / runs.RUN_FILE).read_text())["pid"] == first.pid  # the live run's record kept
    finally:
        runs.abort(first.run_dir, grace_seconds=1)
    from tunelab.train.run import run_lock

    other = tmp_path / "locked"
    holder = run_lock.acquire(other)  # a `tunelab train` started elsewhere (this process holds the lock)
    try:
        with pytest.raises(UserError, match=rf"output_dir {other}: `tunelab train` is running there \(pid {holder.pid}"):
            jobs.start_job("train", {"output_dir": str(other)}, QUICK, root)
    finally:
        run_lock.release(other, holder)
    assert runs.find_runs(other) == []


def test_start_runs_exactly_what_preview_showed(tmp_path: Path, quick_jobs: list[Path]) -> None:
    root = tmp_path / "saves"
    values = {"learning_rate": "2e-4"}
    planned = jobs.plan_job("train", values, QUICK, root)
    time.sleep(1.1)  # a new plan now would get another timestamped folder
    info = jobs.start_job("train", values, QUICK, root, planned=planned)
    assert Path(info.run_dir) == Path(planned["run_dir"]).resolve()
    import yaml

    assert yaml.safe_load(quick_jobs[-1].read_text()) == planned["config"]
    assert quick_jobs[-1] == Path(info.run_dir) / runs.job_yaml_name("train")
    changed = jobs.start_job("train", {"learning_rate": "3e-4"}, QUICK, root, planned=planned)  # settings changed
    assert Path(changed.run_dir) != Path(info.run_dir)
    assert yaml.safe_load(quick_jobs[-1].read_text())["learning_rate"] == 3e-4

    export_plan = jobs.plan_job("export", {}, None, root)
    time.sleep(1.1)
    exported = jobs.start_job("export", {}, None, root, planned=export_plan)
    assert Path(exported.run_dir) == Path(export_plan["run_dir"]).resolve()
    assert exported.extra["export_dir"] == export_plan["config"]["export_dir"]
    again = jobs.start_job("export", {}, None, root, planned=export_plan)  # its folder is used: a fresh one
    assert again.run_dir != exported.run_dir


def test_finished_jobs_leave_no_zombie(tmp_path: Path, quick_jobs: list[Path]) -> None:
    started = [runs.launch("export", {}, tmp_path / f"job{i}") for i in range(3)]
    for info in started:
        _wait(lambda info=info: runs.read_run(info.run_dir).status == "finished", 30, "the job to finish")

    def state(pid: int) -> str | None:
        stat = runs._proc_stat(pid)
        return stat[0] if stat else None

    _wait(lambda: all(state(info.pid) != "Z" for info in started), 10, "the jobs to be reaped")
    assert [state(info.pid) for info in started] == [None, None, None]


def test_a_failed_job_shows_its_error_line() -> None:
    traceback = "step 1\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad value\n"
    assert error_line(traceback) == "ValueError: bad value"
    refused = "[tunelab] loading\ntunelab export: error: export_dir: '/etc/passwd' is a file\n[tunelab] bye\n"
    assert error_line(refused) == "tunelab export: error: export_dir: '/etc/passwd' is a file"
    assert error_line("only\nlast line\n") == "last line" and error_line("") is None
    info = runs.RunInfo(run_dir="/x/export_1", kind="export", pid=1, pgid=1, start_time=0.0, command="c", yaml="y",
                        status="failed", exit_code=2)
    shown = progress_markdown(info, [], texts("en"), refused)
    assert shown.startswith("**export_1** · `export` · **failed** (exit code 2)")
    assert "error: `tunelab export: error: export_dir: '/etc/passwd' is a file`" in shown
    zh = progress_markdown(info, [{"step": 2, "total_steps": 4, "loss": 1.5, "tokens_per_second": 10.0}], texts("zh"),
                           refused)
    assert "`导出` · **失败** (退出码 2)" in zh and "错误: `tunelab export" in zh
    assert "步 2/4" in zh and "10 词元/秒" in zh and "损失 1.5000" in zh
    for english in ("step", "loss", "tokens/s", "exit code", "failed"):
        assert english not in zh.replace("tunelab export: error", ""), english


def test_the_run_picker_and_checkpoints_of_aborted_runs(tmp_path: Path) -> None:
    root = tmp_path / "saves"
    run = root / "m" / "lora" / "train_1"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "checkpoint-2" / "adapter_config.json").write_text("{}")
    (run / "checkpoint-10").mkdir()
    (run / "checkpoint-10" / "adapter_config.json").write_text("{}")
    record = {"run_dir": str(run), "kind": "train", "pid": 2**22 + 1, "pgid": 2**22 + 1, "aborted": True,
              "start_time": time.mktime((2026, 3, 4, 5, 6, 0, 0, 0, -1)), "command": "c", "yaml": "y"}
    (run / runs.RUN_FILE).write_text(json.dumps(record))
    (run / runs.TRAINER_LOG).write_text(json.dumps({"step": 10, "total_steps": 40, "loss": 2.0}) + "\n")
    label = "train_1 · aborted · step 10/40 · 2026-03-04 05:06"
    assert jobs.run_choices(root, "train") == [(label, str(run))]
    assert jobs.run_choices(root, "train", "zh")[0][0] == "train_1 · 已中断 · 步 10/40 · 2026-03-04 05:06"
    assert [p.name for p in jobs.run_checkpoints(run)] == ["checkpoint-2", "checkpoint-10"]
    # no weights in the run folder itself (aborted early): its checkpoints, newest first, are what can be picked
    assert jobs.trained_checkpoints(root) == [("train_1/checkpoint-10 · aborted", str(run / "checkpoint-10")),
                                              ("train_1/checkpoint-2 · aborted", str(run / "checkpoint-2"))]
    assert run_label(runs.read_run(run), [], texts("en")) == "train_1 · aborted · 2026-03-04 05:06"


def test_resume_needs_an_ended_run_and_one_of_its_checkpoints(tmp_path: Path) -> None:
    root = tmp_path / "saves"
    with pytest.raises(UserError, match="Pick an ended training run"):
        jobs.resume_job(None, None, root)
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.RUN_FILE).write_text(json.dumps({"run_dir": str(run), "kind": "train", "pid": 2**22 + 2,
                                                 "pgid": 2**22 + 2, "start_time": 1.0, "command": "c", "yaml": "y"}))
    with pytest.raises(UserError, match="Pick one of this run's checkpoints"):
        jobs.resume_job(str(run), str(tmp_path / "elsewhere" / "checkpoint-1"), root)
