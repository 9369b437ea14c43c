"""The Train tab: data, hyperparameters, Preview / Save / Load / Start / Abort / Resume, and the live view.

Preview plans the run (its YAML, folder and command) and the page keeps the plan until Start uses it or
a setting changes, so the previewed command is the one that runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.webui import catalog, jobs, runs
from tunelab.webui.components import Board, boxes_problem, problem_text
from tunelab.webui.fields import FREEZE, LORA, PREF, config_to_fields, fields_of
from tunelab.webui.i18n import text, texts
from tunelab.webui.progress import loss_points
from tunelab.webui.yaml_config import build_config, command_line, read_yaml, to_yaml, write_yaml

ROWS = (
    ("stage", "dataset_dir", "dataset"),
    ("learning_rate", "num_train_epochs", "max_steps", "max_samples", "compute_type"),
    ("cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "lr_scheduler_type",
     "max_grad_norm", "val_size"),
    ("warmup_steps", "logging_steps", "save_steps", "seed", "output_dir"),
)
GROUPS = (("group_lora", LORA), ("group_freeze", FREEZE), ("group_pref", PREF))
TRAIN_FIELD_NAMES = [f.name for f in fields_of("train")]


def build_train_tab(board: Board, lang: str) -> Callable[[], None]:
    """Lay the tab out now; return the function that wires its events once every tab exists."""
    import gradio as gr

    add = board.add
    with gr.Row():
        add("stage", lang, scale=1)
        dataset_dir = add("dataset_dir", lang, scale=1)
        dataset = add("dataset", lang, choices=catalog.dataset_names("data"), scale=3)
        preview_data = board.button("preview_data", lang, scale=0)
    data_box = gr.Markdown(elem_id="data_preview")
    for row in ROWS[1:]:
        with gr.Row():
            for name in row:
                add(name, lang)
    for group, section in GROUPS:
        with board.label(group, gr.Accordion(text(group, lang), open=False, elem_id=group)):
            members = [f for f in fields_of("train") if f.section == section]
            for row in ([f for f in members if f.kind != "bool"], [f for f in members if f.kind == "bool"]):
                if row:  # check boxes get a row of their own: squeezed beside text boxes their labels were cut
                    with gr.Row():
                        for f in row:
                            add(f, lang)
    with board.label("group_extra", gr.Accordion(text("group_extra", lang), open=False, elem_id="group_extra")):
        extra = board.label("extra_yaml", gr.Code(language="yaml", label=text("extra_yaml", lang),
                                                  elem_id="extra_yaml", interactive=True, lines=3))
    with gr.Row():
        config_path = board.label("config_path", gr.Textbox("saves/webui_train.yaml", label=text("config_path", lang),
                                                            elem_id="config_path", scale=3))
        save = board.button("save_config", lang, scale=1)
        load = board.button("load_config", lang, scale=1)
    with gr.Row():
        preview = board.button("preview", lang)
        start = board.button("start", lang, variant="primary")
        abort = board.button("abort", lang, variant="stop")
    status = gr.Markdown(elem_id="train_status")
    with gr.Row():
        run = board.label("run", gr.Dropdown(choices=[], value=None, label=text("run", lang), elem_id="run", scale=4,
                                             allow_custom_value=True))
        refresh = board.button("refresh_runs", lang, scale=0)
    with gr.Row():
        resume_from = board.label("resume_checkpoint", gr.Dropdown(choices=[], value=None, scale=4,
                                                                   label=text("resume_checkpoint", lang),
                                                                   elem_id="resume_checkpoint"))
        resume = board.button("resume", lang, scale=1)
    with gr.Row():
        with gr.Column(scale=1):
            progress = gr.Markdown(elem_id="train_progress")
            log = board.label("log_box", gr.Textbox(label=text("log_box", lang), lines=10, max_lines=10,
                                                    elem_id="log_box", interactive=False, autoscroll=True))
        with gr.Column(scale=1):
            plot = board.label("loss_plot", gr.LinePlot(loss_points([]), x="step", y="loss", label=text("loss_plot", lang),
                                                        x_title=text("step", lang), y_title=text("loss_word", lang),
                                                        elem_id="loss_plot", height=280))
    with gr.Row():
        yaml_box = board.label("yaml_box", gr.Code(language="yaml", label=text("yaml_box", lang), elem_id="yaml_box",
                                                   interactive=False))
        command = board.label("command_box", gr.Textbox(label=text("command_box", lang), elem_id="command_box",
                                                        interactive=False))
    signature = gr.State(None)
    plan = gr.State(None)  # what Preview showed: Start runs exactly this while the settings are unchanged
    root = board.saves_root

    def show_preview(*args: Any) -> tuple[Any, ...]:
        values, extra_yaml, lang_now = board.values(args[:-2]), args[-2], args[-1]
        if bad_boxes := boxes_problem(values, "train", lang_now):
            return "", "", bad_boxes, None
        try:
            planned = jobs.plan_job("train", values, extra_yaml, root)
        except UserError as error:
            return "", "", problem_text(error, lang_now), None
        run_dir = Path(planned["run_dir"]).resolve()  # as Start names it
        return to_yaml(planned["config"]), command_line("train", run_dir / runs.job_yaml_name("train")), "", planned

    def start_run(*args: Any) -> tuple[Any, ...]:
        values, extra_yaml, lang_now, planned = board.values(args[:-3]), args[-3], args[-2], args[-1]
        if bad_boxes := boxes_problem(values, "train", lang_now):
            return bad_boxes, gr.skip(), gr.skip()
        try:
            info = jobs.start_job("train", values, extra_yaml, root, planned=planned, lang=lang_now)
        except UserError as error:
            return problem_text(error, lang_now), gr.skip(), gr.skip()
        return (f"{text('started', lang_now)}: `{info.command}`",
                gr.update(choices=jobs.run_choices(root, "train", lang_now), value=info.run_dir), None)

    def resume_run(run_dir: str | None, checkpoint: str | None, lang_now: str) -> tuple[str, Any]:
        try:
            info = jobs.resume_job(run_dir, checkpoint, root, lang_now)
        except UserError as error:
            return problem_text(error, lang_now), gr.skip()
        return (f"{text('resumed', lang_now)}: `{info.command}`",
                gr.update(choices=jobs.run_choices(root, "train", lang_now), value=info.run_dir))

    def save_config(*args: Any) -> str:
        values, extra_yaml, path, lang_now = board.values(args[:-3]), args[-3], args[-2], args[-1]
        try:
            written = write_yaml(build_config("train", values, extra_yaml), Path(path))
        except UserError as error:
            return problem_text(error, lang_now)
        except OSError as error:
            return f"⚠️ {path}: {error.strerror or error}"
        return f"{text('saved', lang_now)}: `{written}`"

    train_components: list[Any] = []

    def load_config(path: str, lang_now: str) -> list[Any]:
        try:
            values, extra_keys = config_to_fields("train", read_yaml(path))
        except UserError as error:
            return [gr.skip()] * len(train_components) + [gr.skip(), problem_text(error, lang_now)]
        updates = [gr.update(value=values[n]) if n in values else gr.skip() for n in TRAIN_FIELD_NAMES]
        return updates + [to_yaml(extra_keys) if extra_keys else "", f"{text('loaded', lang_now)}: `{path}`"]

    def tick(run_dir: str | None, lang_now: str, last: Any) -> tuple[Any, ...]:
        markdown, points, log_text, sig = jobs.live_view(run_dir, texts(lang_now))
        if sig == last:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), last
        if last is not None and last[:2] == sig[:2]:
            return markdown, points, log_text, gr.skip(), gr.skip(), sig
        # another run, or its status changed: its checkpoints now, and the picker's label says the new status
        return markdown, points, log_text, checkpoints_of(run_dir), refresh_runs(run_dir, lang_now), sig

    def refresh_runs(current: str | None, lang_now: str) -> Any:
        choices = jobs.run_choices(root, "train", lang_now)
        values = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in values else jobs.pick_run(root, "train"))

    def checkpoints_of(run_dir: str | None) -> Any:
        """The picked run's checkpoints, newest first (resume needs the run to have ended)."""
        info = runs.read_run(run_dir) if run_dir else None
        if info is None or info.status == "running":
            return gr.update(choices=[], value=None)
        folders = [str(p) for p in reversed(jobs.run_checkpoints(run_dir))]
        return gr.update(choices=[(Path(p).name, p) for p in folders], value=folders[0] if folders else None)

    def wire() -> None:
        inputs = board.inputs
        train_components[:] = [board.components[n] for n in TRAIN_FIELD_NAMES]
        dataset_dir.change(lambda d: gr.update(choices=catalog.dataset_names(d)), dataset_dir, dataset)
        preview_data.click(lambda d, names, lang_now: catalog.preview_text(d, list(names or []), lang=lang_now),
                           [dataset_dir, dataset, board.lang], data_box)
        preview.click(show_preview, [*inputs, extra, board.lang], [yaml_box, command, status, plan])
        save.click(save_config, [*inputs, extra, config_path, board.lang], status)
        load.click(load_config, [config_path, board.lang], [*train_components, extra, status])
        start.click(start_run, [*inputs, extra, board.lang, plan], [status, run, plan])
        abort.click(jobs.abort_job, [run, board.lang], status)
        refresh.click(refresh_runs, [run, board.lang], run)
        run.change(checkpoints_of, run, resume_from)
        resume.click(resume_run, [run, resume_from, board.lang], [status, run])
        gr.Timer(1.0).tick(tick, [run, board.lang, signature], [progress, plot, log, resume_from, run, signature],
                           show_progress="hidden")
        board.on_load.append((lambda lang_now: refresh_runs(None, lang_now), [board.lang], [run]))
        board.on_language.append((refresh_runs, [run], [run]))
        board.on_language.append((lambda lang_now: gr.update(x_title=text("step", lang_now),
                                                             y_title=text("loss_word", lang_now)), [], [plot]))

    return wire
