"""Starting board jobs from field values, and the live view of one run, both page-independent.

Where a job writes: a training run in its `output_dir` (default `saves/<model>/<method>/train_<time>`,
as the anchor's board names them); eval and export in `saves/jobs/<kind>_<time>` because their result
folders (`save_dir`, `export_dir`) must start empty.

Preview and Start agree: Preview plans the job (its config and folder, `plan_job`) and the page keeps
that plan; Start runs the kept plan while the settings are unchanged, so the previewed command is the
command that runs. Before anything starts, the config goes through `tunelab check`'s code, and a train
job is refused when its folder already has a live run (the board's own registry, and the run lock
`tunelab train` holds), so two runs never write one folder.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.webui import runs
from tunelab.webui.i18n import text, texts
from tunelab.webui.progress import loss_points, progress_markdown, run_label
from tunelab.webui.yaml_config import build_config, check_config, merged_values, read_yaml

# Start buttons of several pages can be pressed at once; the busy-folder check and the launch that
# registers the run happen under this lock, so two Starts into one folder cannot both pass the check.
_START_LOCK = threading.Lock()


def stamp() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S")


def model_slug(model: str | None) -> str:
    name = Path(str(model or "model").rstrip("/")).name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def default_dir(root: Path, values: Mapping[str, Any], kind: str) -> Path:
    return root / model_slug(values.get("model_name_or_path")) / str(values.get("finetuning_type") or "lora") / \
        f"{kind}_{stamp()}"


def job_config(kind: str, values: Mapping[str, Any], extra_yaml: str | None, root: Path) -> tuple[dict[str, Any], Path]:
    """(config, run folder) for a job, filling the output folder the user left empty."""
    values = merged_values(values)
    config = build_config(kind, values, extra_yaml if kind == "train" else None)
    if kind == "train":
        config["output_dir"] = config.get("output_dir") or str(default_dir(root, values, "train"))
        return config, Path(config["output_dir"])
    if kind == "eval":
        config["save_dir"] = config.get("save_dir") or str(default_dir(root, values, "eval"))
    elif kind == "export":
        config["export_dir"] = config.get("export_dir") or str(default_dir(root, values, "export"))
    return config, root / "jobs" / f"{kind}_{stamp()}"


def settings_signature(kind: str, values: Mapping[str, Any], extra_yaml: str | None) -> str:
    """Equal for equal settings: whether a kept plan still describes what the page shows."""
    return json.dumps([kind, dict(merged_values(values)), extra_yaml or ""], sort_keys=True, default=str)


def plan_job(kind: str, values: Mapping[str, Any], extra_yaml: str | None, root: Path) -> dict[str, Any]:
    """What Preview shows and the page keeps (a plain dict: it lives in a gr.State)."""
    config, run_dir = job_config(kind, values, extra_yaml, root)
    return {"signature": settings_signature(kind, values, extra_yaml), "config": config, "run_dir": str(run_dir)}


def _kept_plan(kind: str, values: Mapping[str, Any], extra_yaml: str | None, root: Path,
               planned: Mapping[str, Any] | None) -> tuple[dict[str, Any], Path]:
    """The previewed plan while the settings are unchanged and no job has used its folder yet; else a new one."""
    if planned and planned.get("signature") == settings_signature(kind, values, extra_yaml):
        run_dir = Path(planned["run_dir"])
        if not (run_dir / runs.RUN_FILE).exists():
            return dict(planned["config"]), run_dir
    return job_config(kind, values, extra_yaml, root)


def _lock_holder(run_dir: Path) -> Any:
    """The live holder of `tunelab train`'s run lock in run_dir (None: free, stale, or no lock module)."""
    try:
        from tunelab.train.run.run_lock import live_holder
    except ImportError:  # a tunelab without the run lock: the board's own registry still guards
        return None
    return live_holder(run_dir)


def busy_problem(run_dir: Path, lang: str = "en") -> str | None:
    """Why run_dir cannot take a new training run now, or None when it can."""
    info = runs.read_run(run_dir) if (run_dir / runs.RUN_FILE).is_file() else None
    if info is not None and info.status == "running":
        return text("busy_board_run", lang).format(folder=run_dir, pid=info.pid,
                                                   since=time.strftime("%H:%M:%S", time.localtime(info.start_time)))
    holder = _lock_holder(run_dir)
    if holder is not None:
        return text("busy_locked_run", lang).format(folder=run_dir, pid=holder.pid, host=holder.host)
    return None


def start_job(kind: str, values: Mapping[str, Any], extra_yaml: str | None, root: Path, *,
              planned: Mapping[str, Any] | None = None, lang: str = "en") -> runs.RunInfo:
    """Validate like `tunelab check`, then launch detached. Raises UserError before launching.
    `planned`: what Preview showed (`plan_job`), used while the settings still match it."""
    config, run_dir = _kept_plan(kind, values, extra_yaml, root, planned)
    return _launch_checked(kind, config, run_dir, root, lang)


def _launch_checked(kind: str, config: dict[str, Any], run_dir: Path, root: Path, lang: str) -> runs.RunInfo:
    root.mkdir(parents=True, exist_ok=True)
    with _START_LOCK:
        if kind == "train" and (problem := busy_problem(Path(config["output_dir"]).resolve(), lang)):
            raise UserError(problem)
        check_config(kind, config)
        extra = {k: config[k] for k in ("save_dir", "export_dir") if k in config}
        return runs.launch(kind, config, run_dir, extra=extra)


def resume_job(run_dir: str | None, checkpoint: str | None, root: Path, lang: str = "en") -> runs.RunInfo:
    """Continue an ended training run from one of its checkpoints: the run's own YAML with
    `resume_from_checkpoint` added, in the same folder (its trainer_log goes on from that step)."""
    info = runs.read_run(run_dir) if run_dir else None
    if info is None or info.kind != "train":
        raise UserError(text("resume_needs_run", lang))
    if not checkpoint or Path(checkpoint).parent.resolve() != Path(info.run_dir).resolve():
        raise UserError(text("resume_needs_checkpoint", lang))
    config = read_yaml(info.yaml)
    config["resume_from_checkpoint"] = str(checkpoint)
    config["output_dir"] = info.run_dir
    return _launch_checked("train", config, Path(info.run_dir), root, lang)


def abort_job(run_dir: str | None, lang_now: str) -> str:
    """Stop a running job (the train and jobs tabs' Abort button); the status line to show."""
    info = runs.read_run(run_dir) if run_dir else None
    if info is None or info.status != "running":
        return text("nothing_to_abort", lang_now)
    left = runs.abort(run_dir)
    return text("aborted", lang_now) if not left else f"⚠️ {text('still_alive', lang_now)}: {left}"


def run_choices(root: Path, kind: str, lang: str = "en") -> list[tuple[str, str]]:
    """The run picker: (label with status, step and start time, run folder), newest first."""
    words = texts(lang)
    return [(run_label(r, runs.read_trainer_log(r.run_dir), words), r.run_dir) for r in runs.find_runs(root, kind)]


def pick_run(root: Path, kind: str) -> str | None:
    """The run a freshly opened page shows: the newest running one, else the newest."""
    found = runs.find_runs(root, kind)
    running = [r for r in found if r.status == "running"]
    chosen = running[0] if running else (found[0] if found else None)
    return chosen.run_dir if chosen else None


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's `checkpoint-N` folders, oldest first (an aborted run keeps the one it saved on Abort)."""
    folders = [p for p in Path(run_dir).glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(folders, key=lambda p: int(p.name[11:]))


def trained_checkpoints(root: Path, lang: str = "en") -> list[tuple[str, str]]:
    """Ended training runs with weights, and each checkpoint of theirs (aborted runs too): the top bar's
    adapter / checkpoint choices as (label, folder)."""
    from tunelab.webui.catalog import has_weights

    words = texts(lang)
    choices: list[tuple[str, str]] = []
    for info in runs.find_runs(root, "train"):
        if info.status == "running":
            continue
        label = run_label(info, runs.read_trainer_log(info.run_dir), words)
        if has_weights(Path(info.run_dir)):
            choices.append((label, info.run_dir))
        for checkpoint in reversed(run_checkpoints(info.run_dir)):
            if has_weights(checkpoint):
                choices.append((f"{info.name}/{checkpoint.name} · {words['status_' + info.status]}", str(checkpoint)))
    return choices


def live_view(run_dir: str | None, texts: dict[str, str]) -> tuple[str, Any, str, tuple[Any, ...]]:
    """(progress markdown, loss points, last log lines, a signature that changes when any of them does)."""
    info = runs.read_run(run_dir) if run_dir else None
    rows = runs.read_trainer_log(run_dir) if run_dir else []
    log = runs.tail(Path(run_dir) / runs.LOG_FILE) if run_dir else ""
    signature = (run_dir, info.status if info else None, len(rows), len(log), texts.get("step"))
    return progress_markdown(info, rows, texts, log), loss_points(rows), log, signature
