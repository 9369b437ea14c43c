"""`tunelab webchat cfg.yaml [key=value ...]`: chat with a model in the browser (gradio)."""

from __future__ import annotations

USAGE = """usage: [GRADIO_SERVER_NAME=127.0.0.1] [GRADIO_SERVER_PORT=7860] tunelab webchat CONFIG.yaml [key=value ...]

Open a chat page for the model the config names, at http://GRADIO_SERVER_NAME:GRADIO_SERVER_PORT
(127.0.0.1:7860 by default: this machine only). The page has a system prompt, temperature, top-p and
maximum-new-tokens controls, and streams answers; for a multimodal model, an image upload sent with the
next message. GRADIO_SHARE=1 asks gradio for a public link."""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.config.parser import parse_config
    from tunelab.errors import require_package

    require_package("gradio", "tunelab webchat", extra="webui")
    from tunelab.infer.loader import load_chat_model
    from tunelab.serve.webchat import WebchatSettings, launch_webchat

    settings = WebchatSettings.from_env()
    chat_model = load_chat_model(parse_config(argv))
    launch_webchat(chat_model, settings, block=True)
    return 0
