"""The Evaluate & Predict and Export tabs: the same panel around `tunelab eval` / `tunelab export`.

Both are jobs like training (a separate process, state in files), so a long evaluation or a merge
of a large model never blocks the page, and Abort stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.webui import jobs, runs
from tunelab.webui.components import Board
from tunelab.webui.i18n import text, texts
from tunelab.webui.progress import progress_markdown
from tunelab.webui.yaml_config import command_line, to_yaml

EVAL_ROWS = (
    ("eval_dataset_dir", "eval_dataset", "task", "n_shot", "lang"),
    ("eval_cutoff_len", "eval_max_samples", "batch_size", "eval_max_new_tokens", "eval_top_p", "eval_temperature"),
    ("save_dir",),
)
EXPORT_ROWS = (
    ("export_dir", "export_size", "export_dtype", "export_device"),
    ("export_legacy_format", "export_quantization_bit", "export_hub_model_id"),
)
RESULT_FILES = ("predict_results.json", "scores.json", "results.json")


def job_results(info: runs.RunInfo | None) -> str:
    """What a finished job produced: eval metrics, or the exported files with their sizes."""
    if info is None:
        return ""
    if info.kind == "eval":
        folder = Path(info.extra.get("save_dir", ""))
        for name in RESULT_FILES:
            path = folder / name
            if path.is_file():
                return f"{path}\n{path.read_text(encoding='utf-8')[:4000]}"
        return ""
    folder = Path(info.extra.get("export_dir", ""))
    if not folder.is_dir():
        return ""
    return "\n".join(f"{p.name}  {p.stat().st_size:,} bytes" for p in sorted(folder.iterdir()) if p.is_file())


def build_job_tab(board: Board, lang: str, kind: str) -> Callable[[], None]:
    import gradio as gr

    rows = EVAL_ROWS if kind == "eval" else EXPORT_ROWS
    if kind == "eval":
        from tunelab.webui.catalog import dataset_names

        choices = {"eval_dataset": dataset_names("data")}
    else:
        choices = {}
    for row in rows:
        with gr.Row():
            for name in row:
                board.add(name, lang, **({"choices": choices[name]} if name in choices else {}))
    with gr.Row():
        preview = board.button("preview", lang, elem_id=f"{kind}_preview")
        start = board.button("start" if kind == "eval" else "export", lang, elem_id=f"{kind}_start", variant="primary")
        abort = board.button("abort", lang, elem_id=f"{kind}_abort", variant="stop")
    status = gr.Markdown(elem_id=f"{kind}_status")
    job = gr.State(None)
    with gr.Row():
        yaml_box = gr.Code(language="yaml", label="YAML", elem_id=f"{kind}_yaml", interactive=False)
        log = gr.Textbox(label="log", lines=10, max_lines=10, elem_id=f"{kind}_log", interactive=False,
                         autoscroll=True)
    results = board.label(f"{kind}_results", gr.Textbox(label=text("results_box", lang), lines=6,
                                                        elem_id=f"{kind}_results", interactive=False),
                          text_name="results_box")
    root = board.saves_root

    def show_preview(*args: Any) -> tuple[str, str]:
        try:
            config, run_dir = jobs.job_config(kind, board.values(args), None, root)
        except (UserError, ValueError) as error:
            return "", f"⚠️ {getattr(error, 'message', error)}"
        return to_yaml(config), f"`{command_line(kind, run_dir / f'tunelab_webui_{kind}.yaml')}`"

    def start_job(*args: Any) -> tuple[str, Any]:
        values, lang_now = board.values(args[:-1]), args[-1]
        try:
            info = jobs.start_job(kind, values, None, root)
        except (UserError, ValueError) as error:
            return f"⚠️ {getattr(error, 'message', error)}", gr.skip()
        return f"{text('started', lang_now)}: `{info.command}`", info.run_dir

    def tick(run_dir: str | None, lang_now: str) -> tuple[Any, ...]:
        if not run_dir:
            return gr.skip(), gr.skip(), gr.skip()
        info = runs.read_run(run_dir)
        return (progress_markdown(info, [], texts(lang_now)), runs.tail(Path(run_dir) / runs.LOG_FILE),
                job_results(info) if info and info.status != "running" else "")

    def latest() -> str | None:
        return jobs.pick_run(root, kind)

    def wire() -> None:
        preview.click(show_preview, board.inputs, [yaml_box, status])
        start.click(start_job, [*board.inputs, board.lang], [status, job])
        abort.click(jobs.abort_job, [job, board.lang], status)
        gr.Timer(2.0).tick(tick, [job, board.lang], [status, log, results], show_progress="hidden")
        board.on_load.append((latest, [], [job]))

    return wire
