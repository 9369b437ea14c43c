"""The browser chat page of `tunelab webchat`: a gradio app over one `ChatModel`.

A chat box whose answers stream in, a system prompt, and temperature / top-p / max-new-tokens
controls that start at the model's resolved defaults. It binds 127.0.0.1 unless GRADIO_SERVER_NAME
says otherwise (the anchor binds every interface by default, which exposes the model to the
network by accident), on GRADIO_SERVER_PORT (7860); GRADIO_SHARE=1 asks gradio for a public link.
"""

from __future__ import annotations

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


def _turns(history: list[dict[str, str]]) -> list[Message]:
    return [Message(Role.USER if item["role"] == "user" else Role.ASSISTANT, item["content"]) for item in history]


def respond(
    chat_model: ChatModel,
    query: str,
    history: list[dict[str, str]],
    system: str,
    max_new_tokens: float,
    top_p: float,
    temperature: float,
) -> Iterator[tuple[list[dict[str, str]], list[dict[str, str]], str]]:
    """Stream one answer: yields (chat shown, history kept, query box) after every piece."""
    if not query.strip():
        yield history, history, query
        return
    shown = [*history, {"role": "user", "content": query}, {"role": "assistant", "content": ""}]
    yield shown, history, ""
    stream = None
    try:
        stream = chat_model.stream_chat(
            _turns(shown[:-1]), system or None,
            max_new_tokens=int(max_new_tokens), top_p=float(top_p), temperature=float(temperature),
        )
        for piece in stream:
            shown[-1] = {"role": "assistant", "content": shown[-1]["content"] + piece}
            yield shown, history, ""
    except UserError as error:
        shown[-1] = {"role": "assistant", "content": f"⚠️ {error.message}"}
        yield shown, history, query
        return
    finally:
        if stream is not None:
            stream.close()
    yield shown, shown, ""


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
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    clear = gr.Button("Clear history", elem_id="clear")
            with gr.Column(scale=1):
                new_tokens = gr.Slider(1, max(max_tokens, 2048), value=max_tokens, step=1, label="Maximum new tokens",
                                       elem_id="max_new_tokens")
                top_p = gr.Slider(0.01, 1.0, value=defaults.top_p, step=0.01, label="Top-p", elem_id="top_p")
                temperature = gr.Slider(0.0, 2.0, value=defaults.temperature if defaults.do_sample else 0.0, step=0.01,
                                        label="Temperature (0: greedy)", elem_id="temperature")

        def run(q: str, h: list[dict[str, str]], s: str, n: float, p: float, t: float) -> Iterator[Any]:
            yield from respond(chat_model, q, h, s, n, p, t)

        inputs = [query, history, system, new_tokens, top_p, temperature]
        outputs = [chatbot, history, query]
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
