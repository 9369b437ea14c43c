"""Server fixtures: a ChatModel on the scripted engine, and a live uvicorn server on loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The server needs the `api` extra; without it these tests skip instead of failing to import.
for _module in ("fastapi", "uvicorn", "sse_starlette", "httpx"):
    pytest.importorskip(_module, reason=f"tests/serve need {_module} (pip install 'tunelab[api]')")

from _serve_fakes import API_KEY, FakeEngine, LiveServer, free_port  # noqa: E402,F401

from tunelab.data.templates import get_template  # noqa: E402
from tunelab.infer.chat_model import ChatModel  # noqa: E402
from tunelab.infer.params import SamplingParams  # noqa: E402
from tunelab.testing import fixture_tokenizer_path  # noqa: E402


@pytest.fixture(scope="session")
def qwen_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_tokenizer_path("qwen2.5"))


@pytest.fixture
def make_chat_model(qwen_tokenizer: Any) -> Callable[..., ChatModel]:
    def make(delay: float = 0.0, scorer: Any = None, template_name: str = "qwen") -> ChatModel:
        engine = FakeEngine(qwen_tokenizer, delay=delay)
        template = get_template(template_name, qwen_tokenizer)
        return ChatModel(engine, template, SamplingParams(max_new_tokens=256), name="fake-model", scorer=scorer)

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(chat_model: ChatModel, **settings: Any) -> LiveServer:
        from tunelab.serve.app import create_app
        from tunelab.serve.settings import ServerSettings

        live = LiveServer(create_app(chat_model, ServerSettings(**settings))).__enter__()
        servers.append(live)
        return live

    yield start
    for live in servers:
        live.__exit__()


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs its tiny models on one torch thread (fixture in tests/conftest.py)."""
