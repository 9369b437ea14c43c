"""Server settings from the environment, under the anchor's names (API_HOST, API_PORT, API_KEY,
API_MODEL_NAME) plus tunelab's own: API_MAX_CONCURRENT, API_MAX_QUEUE, API_MAX_CHOICES,
API_MAX_REQUEST_TOKENS, API_MAX_BODY_BYTES, API_MAX_BATCH, API_CORS_ORIGINS, API_ALLOWED_HOSTS
(docs/inference.md lists them).

Loopback is the default host: a model server reachable from the network is a choice the user makes
by setting API_HOST=0.0.0.0, never an accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tunelab.errors import UserError

LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    model_name: str | None = None  # None: the model folder's name
    max_concurrent: int | None = None  # requests generating at once (None: max_batch); more queue
    max_queue: int = 64  # requests waiting for a slot; beyond this: 429
    max_choices: int = 64  # prompts x n of one request
    max_request_tokens: int = 65536  # new tokens one request may ask for in all (choices x max_tokens)
    max_body_bytes: int = 4 * 1024 * 1024  # larger request bodies are refused (413) before parsing
    max_batch: int = 16  # sequences the hf engine decodes together
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none by default
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # Host headers accepted ("*": any); stops DNS rebinding

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        host = env.get("API_HOST", cls.host) or cls.host
        # a server bound beyond loopback is reached by names it cannot know: any Host, unless the user lists them
        hosts = cls.allowed_hosts if host in LOOPBACK_HOSTS else ("*",)
        return cls(
            host=host,
            port=_int(env, "API_PORT", cls.port, minimum=0),
            api_key=env.get("API_KEY") or None,
            model_name=env.get("API_MODEL_NAME") or None,
            max_concurrent=_int(env, "API_MAX_CONCURRENT", cls.max_concurrent, minimum=1),
            max_queue=_int(env, "API_MAX_QUEUE", cls.max_queue, minimum=0),
            max_choices=_int(env, "API_MAX_CHOICES", cls.max_choices, minimum=1),
            max_request_tokens=_int(env, "API_MAX_REQUEST_TOKENS", cls.max_request_tokens, minimum=1),
            max_body_bytes=_int(env, "API_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_batch=_int(env, "API_MAX_BATCH", cls.max_batch, minimum=1),
            cors_origins=_names(env, "API_CORS_ORIGINS", cls.cors_origins),
            allowed_hosts=_names(env, "API_ALLOWED_HOSTS", hosts),
        )


def _int(env: Mapping[str, str], key: str, default: int | None, *, minimum: int) -> int | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{key}={raw!r} is not an integer.") from None
    if value < minimum or (key == "API_PORT" and value > 65535):
        raise UserError(f"{key}={value} is out of range (at least {minimum}{', at most 65535' if key == 'API_PORT' else ''}).")
    return value


def _names(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list (`API_CORS_ORIGINS=https://a.example,https://b.example`); unset keeps the default."""
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())
