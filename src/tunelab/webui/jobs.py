"""Starting board jobs from field values, and the live view of one run, both page-independent.

Where a job writes: a training run in its `output_dir` (default `saves/<model>/<method>/train_<time>`,
as the anchor's board names them); eval and export in `saves/jobs/<kind>_<time>` because their result
folders (`save_dir`, `export_dir`) must start empty.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.webui import runs
from tunelab.webui.i18n import text
from tunelab.webui.progress import loss_points, progress_markdown
from tunelab.webui.yaml_config import build_config, check_config, merged_values


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


def start_job(kind: str, values: Mapping[str, Any], extra_yaml: str | None, root: Path) -> runs.RunInfo:
    """Validate like `tunelab check`, then launch detached. Raises UserError before launching."""
    config, run_dir = job_config(kind, values, extra_yaml, root)
    root.mkdir(parents=True, exist_ok=True)
    check_config(kind, config, root)
    extra = {k: config[k] for k in ("save_dir", "export_dir") if k in config}
    return runs.launch(kind, config, run_dir, extra=extra)


def abort_job(run_dir: str | None, lang_now: str) -> str:
    """Stop a running job (the train and jobs tabs' Abort button); the status line to show."""
    info = runs.read_run(run_dir) if run_dir else None
    if info is None or info.status != "running":
        return text("nothing_to_abort", lang_now)
    left = runs.abort(run_dir)
    return text("aborted", lang_now) if not left else f"⚠️ still alive: {left}"


def run_choices(root: Path, kind: str) -> list[str]:
    return [r.run_dir for r in runs.find_runs(root, kind)]


def pick_run(root: Path, kind: str) -> str | None:
    """The run a freshly opened page shows: the newest running one, else the newest."""
    found = runs.find_runs(root, kind)
    running = [r for r in found if r.status == "running"]
    chosen = running[0] if running else (found[0] if found else None)
    return chosen.run_dir if chosen else None


def trained_checkpoints(root: Path) -> list[str]:
    """Finished training runs with weights: the top bar's adapter / checkpoint choices."""
    from tunelab.webui.catalog import has_weights

    return [r.run_dir for r in runs.find_runs(root, "train") if r.status in ("finished", "aborted")
            and has_weights(Path(r.run_dir))]


def live_view(run_dir: str | None, texts: dict[str, str]) -> tuple[str, Any, str, tuple[Any, ...]]:
    """(progress markdown, loss points, last log lines, a signature that changes when any of them does)."""
    info = runs.read_run(run_dir) if run_dir else None
    rows = runs.read_trainer_log(run_dir) if run_dir else []
    log = runs.tail(Path(run_dir) / runs.LOG_FILE) if run_dir else ""
    signature = (run_dir, info.status if info else None, len(rows), len(log), texts.get("step"))
    return progress_markdown(info, rows, texts), loss_points(rows), log, signature
