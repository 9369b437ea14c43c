"""The Evaluate & Predict and Export tabs: the same panel around `tunelab eval` / `tunelab export`.

Both are jobs like training (a separate process, state in files), so a long evaluation or a merge
of a large model never blocks the page, and Abort stops it. What Start or Abort said, the job's
progress and the previewed YAML / command each have their own box, so the timer that refreshes the
progress never wipes a preview or a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.webui import jobs, runs
from tunelab.webui.components import Board, boxes_problem, problem_text
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
    status = gr.Markdown(elem_id=f"{kind}_status")  # what Start / Abort said; the timer never writes it
    progress = gr.Markdown(elem_id=f"{kind}_progress")  # the job's state, refreshed by the timer
    job = gr.State(None)
    signature = gr.State(None)  # what the timer last showed: an unchanged job sends nothing
    plan = gr.State(None)  # what Preview showed: Start runs exactly this while the settings are unchanged
    with gr.Row():
        with gr.Column(scale=1):
            yaml_box = board.label(f"{kind}_yaml", gr.Code(language="yaml", label=text("yaml_box", lang),
                                                           elem_id=f"{kind}_yaml", interactive=False),
                                   text_name="yaml_box")
            command = board.label(f"{kind}_command", gr.Textbox(label=text("command_box", lang),
                                                                elem_id=f"{kind}_command", interactive=False),
                                  text_name="command_box")
        log = board.label(f"{kind}_log", gr.Textbox(label=text("job_log", lang), lines=10, max_lines=10,
                                                    elem_id=f"{kind}_log", interactive=False, autoscroll=True),
                          text_name="job_log")
    results = board.label(f"{kind}_results", gr.Textbox(label=text("results_box", lang), lines=6,
                                                        elem_id=f"{kind}_results", interactive=False),
                          text_name="results_box")
    root = board.saves_root

    def show_preview(*args: Any) -> tuple[Any, ...]:
        values, lang_now = board.values(args[:-1]), args[-1]
        if bad_boxes := boxes_problem(values, kind, lang_now):
            return "", "", bad_boxes, None
        try:
            planned = jobs.plan_job(kind, values, None, root)
        except UserError as error:
            return "", "", problem_text(error, lang_now), None
        yaml_path = Path(planned["run_dir"]).resolve() / runs.job_yaml_name(kind)  # as Start names it
        return to_yaml(planned["config"]), command_line(kind, yaml_path), "", planned

    def start_job(*args: Any) -> tuple[Any, ...]:
        values, lang_now, planned = board.values(args[:-2]), args[-2], args[-1]
        if bad_boxes := boxes_problem(values, kind, lang_now):
            return bad_boxes, gr.skip(), gr.skip()
        try:
            info = jobs.start_job(kind, values, None, root, planned=planned, lang=lang_now)
        except UserError as error:
            return problem_text(error, lang_now), gr.skip(), gr.skip()
        return f"{text('started', lang_now)}: `{info.command}`", info.run_dir, None

    def tick(run_dir: str | None, lang_now: str, last: Any) -> tuple[Any, ...]:
        if not run_dir:
            return gr.skip(), gr.skip(), gr.skip(), last
        info = runs.read_run(run_dir)
        log_text = runs.tail(Path(run_dir) / runs.LOG_FILE)
        sig = (run_dir, info.status if info else None, len(log_text), log_text[-200:], lang_now)
        if sig == last:
            return gr.skip(), gr.skip(), gr.skip(), last
        done = job_results(info) if info and info.status != "running" else ""
        return progress_markdown(info, [], texts(lang_now), log_text), log_text, done, sig

    def latest() -> str | None:
        return jobs.pick_run(root, kind)

    def wire() -> None:
        preview.click(show_preview, [*board.inputs, board.lang], [yaml_box, command, status, plan])
        start.click(start_job, [*board.inputs, board.lang, plan], [status, job, plan])
        abort.click(jobs.abort_job, [job, board.lang], status)
        gr.Timer(2.0).tick(tick, [job, board.lang, signature], [progress, log, results, signature],
                           show_progress="hidden")
        board.on_load.append((latest, [], [job]))

    return wire
