"""`tunelab webui`: the board. Top bar (language, model, template, method, checkpoint, quantization)
over four tabs: Train, Evaluate & Predict, Chat, Export.

Nothing a job needs lives in the page: jobs are processes with their state in run folders under
`saves/`, so a reload or a new browser finds them again (`demo.load` reattaches to the newest run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tunelab.webui import catalog, jobs
from tunelab.webui.components import Board, wire_number_checks
from tunelab.webui.i18n import text
from tunelab.webui.tab_chat import ChatHolder, build_chat_tab
from tunelab.webui.tab_jobs import build_job_tab
from tunelab.webui.tab_train import build_train_tab

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine

TABS = (("tab_train", "train"), ("tab_eval", "eval"), ("tab_chat", "chat"), ("tab_export", "export"))

# Labels wrap instead of being cut (check boxes, long field names at 1024 px); a box whose text is no
# number gets a red frame beside its message.
PAGE_CSS = """
label span, .checkbox-container span, [data-testid="block-info"] { white-space: normal; overflow-wrap: anywhere; }
.checkbox-container { min-width: 0; }
.tunelab-invalid input, .tunelab-invalid textarea { border-color: #d93025 !important; }
.tunelab-invalid [data-testid="block-info"] + div, .tunelab-invalid .info { color: #d93025; }
"""
# The log boxes follow their newest line: whenever a log's text changes, or a box hidden in another tab
# is shown, it is scrolled to the end (with gradio's own autoscroll alone the boxes stayed at the top,
# so a failed run's error was below the fold). Scrolling up to read changes neither, so it is left alone.
LOG_BOXES = ("log_box", "eval_log", "export_log")
PAGE_HEAD = """<script>
(() => {
  const seen = new WeakMap();
  setInterval(() => {
    for (const id of LOG_BOXES) {
      const box = document.querySelector(`#${id} textarea`);
      const key = box && `${box.scrollHeight}|${box.value}`;
      if (box && seen.get(box) !== key) { seen.set(box, key); box.scrollTop = box.scrollHeight; }
    }
  }, 300);
})();
</script>""".replace("LOG_BOXES", json.dumps(LOG_BOXES))


def _top_bar(board: Board, lang: str) -> None:
    import gradio as gr

    with gr.Row():
        board.lang = gr.Dropdown(choices=[("English", "en"), ("中文", "zh")], value=lang, label=text("ui_lang", lang),
                                 elem_id="ui_lang", scale=1)
        model = board.add("model_name_or_path", lang, choices=list(catalog.SUGGESTED_MODELS), scale=3)
        template = board.add("template", lang, choices=catalog.template_names(), scale=1)
        board.add("finetuning_type", lang, scale=1)
    with gr.Row():
        checkpoint = board.add("checkpoint_path", lang, choices=[], scale=4)
        refresh = board.button("refresh_checkpoints", lang, scale=0)
        board.add("quantization_bit", lang, scale=1)
        board.add("trust_remote_code", lang, scale=1)

    def guess_template(path: str, current: str) -> str:
        return catalog.infer_template(path) or current

    def checkpoints(current: str | None, lang_now: str) -> Any:
        choices = jobs.trained_checkpoints(board.saves_root, lang_now)
        return gr.update(choices=choices, value=current)

    model.change(guess_template, [model, template], template)
    refresh.click(checkpoints, [checkpoint, board.lang], checkpoint)
    board.on_load.append((lambda lang_now: checkpoints(None, lang_now), [board.lang], [checkpoint]))
    board.on_language.append((checkpoints, [checkpoint], [checkpoint]))


def build_board(saves_root: str | Path = "saves", lang: str = "en") -> Any:
    """The gradio Blocks app (not launched). `saves_root` is where runs are written and found."""
    import gradio as gr

    board = Board(saves_root=Path(saves_root))
    holder = ChatHolder()
    wires = []
    tabs: dict[str, Any] = {}
    with gr.Blocks(title="tunelab board") as demo:
        gr.Markdown("## tunelab board", elem_id="title")
        _top_bar(board, lang)
        with gr.Tabs():
            for tab_name, kind in TABS:
                with gr.Tab(text(tab_name, lang), elem_id=tab_name) as tab:
                    tabs[tab_name] = tab
                    if kind == "train":
                        wires.append(build_train_tab(board, lang))
                    elif kind == "chat":
                        wires.append(build_chat_tab(board, lang, holder))
                    else:
                        wires.append(build_job_tab(board, lang, kind))
        for wire in wires:
            wire()
        wire_number_checks(board)
        _wire_language(board, tabs)
        for fn, inputs, outputs in board.on_load:
            demo.load(fn, inputs, outputs)
    demo.tunelab_board = board  # type: ignore[attr-defined]  # tests read the component table
    return demo


def _wire_language(board: Board, tabs: dict[str, Any]) -> None:
    import gradio as gr

    labelled = list(board.labelled.values())
    buttons = list(board.buttons.values())
    tab_items = list(tabs.items())

    def switch(lang: str) -> list[Any]:
        updates = [gr.update(label=text(name, lang)) for name, _ in labelled]
        updates += [gr.update(value=text(name, lang)) for name, _ in buttons]
        updates += [gr.update(label=text(name, lang)) for name, _ in tab_items]
        return [gr.update(label=text("ui_lang", lang)), *updates]

    outputs = [board.lang, *[c for _, c in labelled], *[b for _, b in buttons], *[t for _, t in tab_items]]
    board.lang.change(switch, board.lang, outputs)
    for fn, inputs, outputs_ in board.on_language:  # lists whose entries carry words (run status, ...)
        board.lang.change(fn, [*inputs, board.lang], outputs_)


def launch_board(host: str = "127.0.0.1", port: int = 7860, share: bool = False, *, saves_root: str | Path = "saves",
                 block: bool = True) -> tuple[Any, str]:
    """Serve the board; with `block=False` return (app, local URL) and keep serving in the background."""
    demo = build_board(saves_root)
    demo.queue(default_concurrency_limit=4)
    _app, url, _share = demo.launch(server_name=host, server_port=port, share=share, ssr_mode=False,
                                    prevent_thread_lock=not block, quiet=not block, inbrowser=False,
                                    css=PAGE_CSS, head=PAGE_HEAD)
    return demo, url
