"""The Chat tab: load the top bar's model (with the picked adapter or trained run) and talk to it.

The model is built exactly as `tunelab chat` builds it: the board's chat config goes through
`parse_config` and `load_chat_model`, and answers stream through webchat's `respond`. A picture uploaded
beside the message box goes with the next message to a multimodal model (a text-only one says it cannot
read it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from tunelab.errors import UserError
from tunelab.webui.components import Board, boxes_problem, problem_text
from tunelab.webui.i18n import text


class ChatHolder:
    """The one loaded chat model of this board process (loading a second one replaces it)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.description = ""
        self.lock = threading.Lock()

    def load(self, values: dict[str, Any], lang: str = "en") -> str:
        """Load the model the settings describe, after the same check `tunelab chat` runs (UserError:
        nothing was loaded, and the model loaded before stays)."""
        import tempfile
        from pathlib import Path

        from tunelab.config.parser import parse_config
        from tunelab.infer.loader import load_chat_model
        from tunelab.webui.yaml_config import build_config, check_config, write_yaml

        weightless = weightless_run(values.get("checkpoint_path"), lang)
        if weightless:
            raise UserError(weightless)
        config = build_config("chat", values)
        check_config("chat", config)
        with self.lock, tempfile.TemporaryDirectory(prefix="tunelab_webui_chat_") as scratch:
            path = write_yaml(config, Path(scratch) / "chat.yaml")
            self.unload()
            self.model = load_chat_model(parse_config([str(path)]))
        where = config.get("adapter_name_or_path") or config.get("model_name_or_path")
        self.description = f"`{where}` · template `{self.model.template.name}`"
        return self.description

    def unload(self) -> None:
        self.model = None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


def weightless_run(picked: Any, lang: str) -> str | None:
    """Why a picked run folder cannot be chatted with (it holds no weights: aborted before saving), with
    the checkpoints to pick instead; None when it has weights or nothing is picked."""
    from pathlib import Path

    from tunelab.webui.catalog import has_weights
    from tunelab.webui.jobs import run_checkpoints

    if not picked:
        return None
    folder = Path(picked[-1] if isinstance(picked, list) else picked)
    if not folder.is_dir() or has_weights(folder):
        return None  # a hub id or a missing path: the config check names it
    saved = [p.name for p in run_checkpoints(folder) if has_weights(p)]
    listed = f" ({', '.join(saved)})" if saved else ""
    return text("no_weights", lang).format(folder=folder, checkpoints=listed)


def build_chat_tab(board: Board, lang: str, holder: ChatHolder) -> Callable[[], None]:
    import gradio as gr

    with gr.Row():
        board.add("infer_backend", lang)
        board.add("infer_dtype", lang)
        load = board.button("load_model", lang, variant="primary")
        unload = board.button("unload_model", lang)
    info = gr.Markdown(elem_id="chat_info")
    system = board.add("default_system", lang)
    chatbot = board.label("chatbot", gr.Chatbot(label=text("chatbot", lang), height=360, elem_id="chatbot"))
    history = gr.State([])
    with gr.Row():
        with gr.Column(scale=4):
            query = board.label("query", gr.Textbox(label=text("query", lang), lines=1, elem_id="query"))
            image = board.label("image", gr.Image(label=text("image", lang), type="filepath", sources=["upload"],
                                                  height=160, elem_id="chat_image"))
            with gr.Row():
                send = board.button("send", lang, variant="primary")
                clear = board.button("clear", lang)
        with gr.Column(scale=1):
            max_new_tokens = board.add("max_new_tokens", lang)
            top_p = board.add("top_p", lang)
            temperature = board.add("temperature", lang)

    def load_model(*args: Any) -> str:
        values, lang_now = board.values(args[:-1]), args[-1]
        if bad_boxes := boxes_problem(values, "chat", lang_now):
            return bad_boxes
        try:
            description = holder.load(values, lang_now)
        except UserError as error:
            return problem_text(error, lang_now)
        except Exception as error:  # noqa: BLE001 - a page shows the reason instead of spinning forever
            return f"⚠️ {type(error).__name__}: {error}"
        return f"{text('model_loaded', lang_now)}: {description}"

    def unload_model(lang_now: str) -> str:
        holder.unload()
        return text("model_unloaded", lang_now)

    def chat(query_text: str, kept: list[dict[str, Any]], system_text: str, new_tokens: float, p: float,
             t: float, picture: str | None, lang_now: str) -> Iterator[Any]:
        if holder.model is None:
            yield kept, kept, query_text, picture, gr.update(value=f"⚠️ {text('no_model', lang_now)}")
            return
        from tunelab.serve.webchat import respond_with_image

        for shown, history_now, box, picture_now in respond_with_image(holder.model, query_text, kept, system_text,
                                                                       new_tokens, p, t, picture):
            yield shown, history_now, box, picture_now, gr.skip()

    def wire() -> None:
        load.click(load_model, [*board.inputs, board.lang], info)
        unload.click(unload_model, board.lang, info)
        inputs = [query, history, system, max_new_tokens, top_p, temperature, image, board.lang]
        outputs = [chatbot, history, query, image, info]
        query.submit(chat, inputs, outputs)
        send.click(chat, inputs, outputs)
        clear.click(lambda: ([], []), None, [chatbot, history])

    return wire
