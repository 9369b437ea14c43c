"""`API_PORT=8000 tunelab api cfg.yaml [key=value ...]`: serve a model behind an OpenAI-compatible API.

The port is bound before the model loads (a busy port is one message at once, not after minutes of
loading) and that very socket is handed to uvicorn, so nothing can take it in between. Start-up logs the
settings inference uses, not the training values the config parser derives (lora_alpha, packing ...).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from tunelab.errors import UserError

USAGE = """usage: [API_HOST=127.0.0.1] [API_PORT=8000] [API_KEY=...] [API_MODEL_NAME=...] tunelab api CONFIG.yaml [key=value ...]

Serve the model the config names at http://API_HOST:API_PORT/v1 (OpenAI protocol: /v1/models,
/v1/chat/completions with streaming, tools, tool_choice, response_format (JSON / JSON schema by constrained
decoding), logprobs, penalties and logit_bias, and, for multimodal models, image_url / video_url /
input_audio parts as data: URLs or server-side paths, /v1/completions, /v1/score/evaluation for reward
models; /health). Environment: API_HOST (default 127.0.0.1: loopback only), API_PORT (8000),
API_KEY (require `Authorization: Bearer KEY` on every route but /health), API_MODEL_NAME (the name
clients see), API_MAX_CONCURRENT (generations at once), API_MAX_QUEUE (waiting requests before 429, 64),
API_MAX_CHOICES (64), API_MAX_REQUEST_TOKENS (65536), API_MAX_BODY_BYTES (4 MiB), API_MAX_BATCH (16),
API_CORS_ORIGINS (browser origins allowed, comma-separated; default none), API_ALLOWED_HOSTS (Host
names accepted; default the loopback names when API_HOST is loopback, "*" any).
See docs/inference.md."""

#: the config groups whose derived values matter when serving (the rest only shape training)
INFERENCE_GROUPS = frozenset({"model", "generating"})
INFERENCE_KEYS = frozenset({"template"})


class TrainingDerivations(logging.Filter):
    """Drops the parser's "key = value (why)" lines for keys that only training reads."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "%s = %r (%s)" or not isinstance(record.args, tuple) or not record.args:
            return True
        from tunelab.config.groups import all_fields

        key = str(record.args[0])
        groups = {field.group for field in all_fields().get(key, ())}
        return key in INFERENCE_KEYS or bool(groups & INFERENCE_GROUPS) or not groups


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now; a UserError naming API_HOST / API_PORT when it cannot be."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise UserError(f"API_HOST={host}: not an address of this machine ({error.strerror}).") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UserError(f"API_PORT={port}: cannot listen on {host}:{port} ({error.strerror}); another server may be "
                        "using it. Choose another API_PORT, or stop that server.") from None
    return sock


def _parse(argv: list[str]) -> Any:
    from tunelab.config.parser import parse_config

    config_logger = logging.getLogger("tunelab.config")
    quiet = TrainingDerivations()
    config_logger.addFilter(quiet)
    try:
        return parse_config(argv)
    finally:
        config_logger.removeFilter(quiet)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.errors import require_package
    from tunelab.serve.settings import LOOPBACK_HOSTS, ServerSettings

    for module, package in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("sse_starlette", "sse-starlette")):
        require_package(module, "tunelab api", package=package, extra="api")
    settings = ServerSettings.from_env()
    config = _parse(argv)
    sock = bind(settings.host, settings.port)
    try:
        from tunelab.infer.loader import load_chat_model
        from tunelab.serve.app import create_app

        chat_model = load_chat_model(config)
        app = create_app(chat_model, settings)
        logger = logging.getLogger("tunelab.serve")
        if settings.host not in LOOPBACK_HOSTS and not settings.api_key:
            logger.warning("API_HOST=%s exposes the model beyond this machine without an API_KEY.", settings.host)
        logger.info("serving '%s' at http://%s:%d/v1%s; hosts %s; CORS origins %s", settings.model_name or chat_model.name,
                    settings.host, settings.port, " (API key required)" if settings.api_key else "",
                    ", ".join(settings.allowed_hosts), ", ".join(settings.cors_origins) or "none")
        serve(app, settings, sock)
    finally:
        sock.close()
    return 0


def serve(app: Any, settings: Any, sock: socket.socket) -> None:
    """Run uvicorn on the socket bound before the model loaded (blocks until the server stops)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                                           access_log=False))
    server.run(sockets=[sock])
