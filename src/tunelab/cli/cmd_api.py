"""`API_PORT=8000 tunelab api cfg.yaml [key=value ...]`: serve a model behind an OpenAI-compatible API."""

from __future__ import annotations

USAGE = """usage: [API_HOST=127.0.0.1] [API_PORT=8000] [API_KEY=...] [API_MODEL_NAME=...] tunelab api CONFIG.yaml [key=value ...]

Serve the model the config names at http://API_HOST:API_PORT/v1 (OpenAI protocol: /v1/models,
/v1/chat/completions with streaming, tools and, for multimodal models, image_url / video_url /
input_audio parts as data: URLs or server-side paths, /v1/completions, /v1/score/evaluation for reward
models; /health). Environment: API_HOST (default 127.0.0.1: loopback only), API_PORT (8000),
API_KEY (require `Authorization: Bearer KEY`), API_MODEL_NAME (the name clients see),
API_MAX_CONCURRENT (generations at once, 1), API_MAX_QUEUE (waiting requests before 429, 64).
See docs/inference.md."""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    import logging

    from tunelab.config.parser import parse_config
    from tunelab.errors import require_package
    from tunelab.serve.settings import ServerSettings

    for module, package in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("sse_starlette", "sse-starlette")):
        require_package(module, "tunelab api", package=package, extra="api")
    settings = ServerSettings.from_env()
    config = parse_config(argv)
    import uvicorn

    from tunelab.infer.loader import load_chat_model
    from tunelab.serve.app import create_app

    chat_model = load_chat_model(config)
    app = create_app(chat_model, settings)
    logger = logging.getLogger("tunelab.serve")
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        logger.warning("API_HOST=%s exposes the model beyond this machine without an API_KEY.", settings.host)
    logger.info("serving '%s' at http://%s:%d/v1%s", settings.model_name or chat_model.name, settings.host,
                settings.port, " (API key required)" if settings.api_key else "")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    return 0
