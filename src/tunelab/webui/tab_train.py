"""The Train tab: data, hyperparameters, Preview / Save / Load / Start / Abort, and the live view."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.webui import catalog, jobs
from tunelab.webui.components import Board
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
            with gr.Row():
                for f in fields_of("train"):
                    if f.section == section:
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
        with gr.Column(scale=1):
            progress = gr.Markdown(elem_id="train_progress")
            log = board.label("log_box", gr.Textbox(label=text("log_box", lang), lines=10, max_lines=10,
                                                    elem_id="log_box", interactive=False, autoscroll=True))
        with gr.Column(scale=1):
            plot = board.label("loss_plot", gr.LinePlot(loss_points([]), x="step", y="loss", label=text("loss_plot", lang),
                                                        elem_id="loss_plot", height=280))
    with gr.Row():
        yaml_box = board.label("yaml_box", gr.Code(language="yaml", label=text("yaml_box", lang), elem_id="yaml_box",
                                                   interactive=False))
        command = board.label("command_box", gr.Textbox(label=text("command_box", lang), elem_id="command_box",
                                                        interactive=False))
    signature = gr.State(None)
    root = board.saves_root

    def show_preview(*args: Any) -> tuple[str, str, str]:
        values, extra_yaml = board.values(args[:-1]), args[-1]
        try:
            config, run_dir = jobs.job_config("train", values, extra_yaml, root)
        except (UserError, ValueError) as error:
            return "", "", f"⚠️ {getattr(error, 'message', error)}"
        return to_yaml(config), command_line("train", run_dir / "tunelab_webui_train.yaml"), ""

    def start_run(*args: Any) -> tuple[str, Any]:
        values, extra_yaml, lang_now = board.values(args[:-2]), args[-2], args[-1]
        try:
            info = jobs.start_job("train", values, extra_yaml, root)
        except (UserError, ValueError) as error:
            return f"⚠️ {getattr(error, 'message', error)}", gr.skip()
        return (f"{text('started', lang_now)}: `{info.command}`",
                gr.update(choices=jobs.run_choices(root, "train"), value=info.run_dir))

    def save_config(*args: Any) -> str:
        values, extra_yaml, path = board.values(args[:-2]), args[-2], args[-1]
        try:
            written = write_yaml(build_config("train", values, extra_yaml), Path(path))
        except (UserError, OSError) as error:
            return f"⚠️ {getattr(error, 'message', error)}"
        return f"{text('saved', 'en')}: `{written}`"

    train_components: list[Any] = []

    def load_config(path: str) -> list[Any]:
        try:
            values, extra_keys = config_to_fields("train", read_yaml(path))
        except UserError as error:
            return [gr.skip()] * len(train_components) + [gr.skip(), f"⚠️ {error.message}"]
        updates = [gr.update(value=values[n]) if n in values else gr.skip() for n in TRAIN_FIELD_NAMES]
        return updates + [to_yaml(extra_keys) if extra_keys else "", f"{text('loaded', 'en')}: `{path}`"]

    def tick(run_dir: str | None, lang_now: str, last: Any) -> tuple[Any, ...]:
        markdown, points, log_text, sig = jobs.live_view(run_dir, texts(lang_now))
        if sig == last:
            return gr.skip(), gr.skip(), gr.skip(), last
        return markdown, points, log_text, sig

    def refresh_runs(current: str | None) -> Any:
        choices = jobs.run_choices(root, "train")
        return gr.update(choices=choices, value=current if current in choices else jobs.pick_run(root, "train"))

    def wire() -> None:
        inputs = board.inputs
        train_components[:] = [board.components[n] for n in TRAIN_FIELD_NAMES]
        dataset_dir.change(lambda d: gr.update(choices=catalog.dataset_names(d)), dataset_dir, dataset)
        preview_data.click(lambda d, names: catalog.preview_text(d, list(names or [])), [dataset_dir, dataset], data_box)
        preview.click(show_preview, [*inputs, extra], [yaml_box, command, status])
        save.click(save_config, [*inputs, extra, config_path], status)
        load.click(load_config, config_path, [*train_components, extra, status])
        start.click(start_run, [*inputs, extra, board.lang], [status, run])
        abort.click(jobs.abort_job, [run, board.lang], status)
        refresh.click(refresh_runs, run, run)
        gr.Timer(1.0).tick(tick, [run, board.lang, signature], [progress, plot, log, signature], show_progress="hidden")
        board.on_load.append((lambda: refresh_runs(None), [], [run]))

    return wire
