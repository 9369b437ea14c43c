"""Server settings from the environment, under the anchor's names (API_HOST, API_PORT, API_KEY,
API_MODEL_NAME) plus tunelab's API_MAX_CONCURRENT and API_MAX_QUEUE.

Loopback is the default host: a model server reachable from the network is a choice the user makes
by setting API_HOST=0.0.0.0, never an accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tunelab.errors import UserError


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    model_name: str | None = None  # None: the model folder's name
    max_concurrent: int = 1  # generations running at once; more queue (hf runs one at a time best)
    max_queue: int = 64  # requests waiting for a slot; beyond this: 429

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("API_HOST", cls.host) or cls.host,
            port=_int(env, "API_PORT", cls.port, minimum=0),
            api_key=env.get("API_KEY") or None,
            model_name=env.get("API_MODEL_NAME") or None,
            max_concurrent=_int(env, "API_MAX_CONCURRENT", cls.max_concurrent, minimum=1),
            max_queue=_int(env, "API_MAX_QUEUE", cls.max_queue, minimum=0),
        )


def _int(env: Mapping[str, str], key: str, default: int, *, minimum: int) -> int:
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
