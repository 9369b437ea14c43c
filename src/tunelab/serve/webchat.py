"""The browser chat page of `tunelab webchat`: a gradio app over one `ChatModel`.

A chat box whose answers stream in, a system prompt, and temperature / top-p / max-new-tokens
controls that start at the model's resolved defaults; for a model that reads images, a picture upload
whose picture goes with the next message (and stays part of the conversation, shown in the chat). It binds 127.0.0.1 unless GRADIO_SERVER_NAME
says otherwise (the anchor binds every interface by default, which exposes the model to the
network by accident), on GRADIO_SERVER_PORT (7860); GRADIO_SHARE=1 asks gradio for a public link.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.errors import UserError
from tunelab.infer.chat_model import ChatModel

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine


@dataclass(frozen=True)
class WebchatSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebchatSettings:
        env = os.environ if env is None else env
        raw_port = env.get("GRADIO_SERVER_PORT") or str(cls.port)
        if not raw_port.isdigit() or not 0 <= int(raw_port) <= 65535:
            raise UserError(f"GRADIO_SERVER_PORT={raw_port!r} is not a port number (0-65535).")
        share = (env.get("GRADIO_SHARE") or "").lower() in ("1", "true", "yes")
        return cls(host=env.get("GRADIO_SERVER_NAME") or cls.host, port=int(raw_port), share=share)


def _turns(history: list[dict[str, Any]]) -> tuple[list[Message], list[str]]:
    """The kept history as messages and its pictures in order; a user turn with pictures (`images`) and no
    `<image>` marker gets one per picture at its start, as ChatModel would put them."""
    from tunelab.infer.media_prompt import ChatMedia, place_markers

    turns, images = [], []
    for item in history:
        message = Message(Role.USER if item["role"] == "user" else Role.ASSISTANT, str(item["content"]))
        pictures = list(item.get("images") or ())
        if pictures:
            message = place_markers([message], ChatMedia.of(images=pictures))[0]
            images.extend(pictures)
        turns.append(message)
    return turns, images


def _display(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat as the Chatbot shows it: a turn's pictures as file parts before its text."""
    shown = []
    for item in history:
        pictures = item.get("images") or ()
        if pictures:
            parts = [{"type": "file", "file": {"path": path, "mime_type": mimetypes.guess_type(path)[0] or "image/png"}}
                     for path in pictures]  # the type makes the Chatbot show a picture, not a file icon
            shown.append({"role": item["role"], "content": [*parts, {"type": "text", "text": item["content"]}]})
        else:
            shown.append(item)
    return shown


def respond(
    chat_model: ChatModel,
    query: str,
    history: list[dict[str, Any]],
    system: str,
    max_new_tokens: float,
    top_p: float,
    temperature: float,
    image: str | None = None,
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], str]]:
    """Stream one answer: yields (chat shown, history kept, query box) after every piece. `image`: the path
    of a picture sent with this message (kept in the history entry's `images`)."""
    if not query.strip():
        yield _display(history), history, query
        return
    asked: dict[str, Any] = {"role": "user", "content": query}
    if image:
        asked["images"] = [image]
    shown = [*history, asked, {"role": "assistant", "content": ""}]
    yield _display(shown), history, ""
    stream = None
    try:
        turns, images = _turns(shown[:-1])
        stream = chat_model.stream_chat(
            turns, system or None, images=images,
            max_new_tokens=int(max_new_tokens), top_p=float(top_p), temperature=float(temperature),
        )
        for piece in stream:
            shown[-1] = {"role": "assistant", "content": shown[-1]["content"] + piece}
            yield _display(shown), history, ""
    except UserError as error:
        shown[-1] = {"role": "assistant", "content": f"⚠️ {error.message}"}
        yield _display(shown), history, query
        return
    finally:
        if stream is not None:
            stream.close()
    yield _display(shown), shown, ""


def respond_with_image(chat_model: ChatModel, query: str, history: list[dict[str, Any]], system: str,
                       max_new_tokens: float, top_p: float, temperature: float,
                       image: str | None) -> Iterator[tuple[Any, Any, str, str | None]]:
    """`respond`, plus the picture box's next value: emptied once the message (and its picture) was sent,
    kept when the message was refused or empty, so it can be sent again."""
    for shown, kept, box in respond(chat_model, query, history, system, max_new_tokens, top_p, temperature, image):
        yield shown, kept, box, (None if box == "" else image)


def build_webchat(chat_model: ChatModel) -> Any:
    """The gradio Blocks app (not launched)."""
    import gradio as gr

    defaults = chat_model.defaults
    max_tokens = defaults.max_new_tokens or 1024
    with gr.Blocks(title=f"tunelab · {chat_model.name}", analytics_enabled=False) as demo:
        gr.Markdown(f"### tunelab webchat · `{chat_model.name}`")
        history = gr.State([])
        chatbot = gr.Chatbot(label="Chat", height=460, elem_id="chatbot")
        with gr.Row():
            with gr.Column(scale=4):
                system = gr.Textbox(label="System prompt", value=chat_model.template.default_system, lines=1,
                                    elem_id="system")
                query = gr.Textbox(show_label=False, placeholder="Type a message, then Enter", lines=1,
                                   elem_id="query")
                image = gr.Image(label="Image (sent with the next message)", type="filepath", sources=["upload"],
                                 height=160, elem_id="image", visible=chat_model.reads("images"))
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    clear = gr.Button("Clear history", elem_id="clear")
            with gr.Column(scale=1):
                new_tokens = gr.Slider(1, max(max_tokens, 2048), value=max_tokens, step=1, label="Maximum new tokens",
                                       elem_id="max_new_tokens")
                top_p = gr.Slider(0.01, 1.0, value=defaults.top_p, step=0.01, label="Top-p", elem_id="top_p")
                temperature = gr.Slider(0.0, 2.0, value=defaults.temperature if defaults.do_sample else 0.0, step=0.01,
                                        label="Temperature (0: greedy)", elem_id="temperature")

        def run(q: str, h: list[dict[str, Any]], s: str, n: float, p: float, t: float, i: str | None) -> Iterator[Any]:
            yield from respond_with_image(chat_model, q, h, s, n, p, t, i)

        inputs = [query, history, system, new_tokens, top_p, temperature, image]
        outputs = [chatbot, history, query, image]
        query.submit(run, inputs, outputs)
        send.click(run, inputs, outputs)
        clear.click(lambda: ([], []), None, [chatbot, history])
    return demo


def launch_webchat(chat_model: ChatModel, settings: WebchatSettings, *, block: bool = True) -> Any:
    """Start the page; with `block=False` return (app, local_url) and keep serving in the background."""
    demo = build_webchat(chat_model)
    demo.queue(default_concurrency_limit=1)
    _app, url, _share = demo.launch(
        server_name=settings.host, server_port=settings.port, share=settings.share, ssr_mode=False,
        prevent_thread_lock=not block, quiet=not block, inbrowser=False,
    )
    return demo, url
