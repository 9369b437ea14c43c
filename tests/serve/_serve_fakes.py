"""A scripted engine for server tests: real tokenizer and template, predictable answers.

A random tiny model cannot be asked for a tool call or a given sentence, so protocol behaviour
(tool_calls, stop, usage, streaming order) is tested against this engine, which answers by rule:
- tools offered in the prompt (`<tools>`): a Qwen `<tool_call>` for get_weather(city=Paris);
- a tool result last: "Tool said: <result>.";
- a user message starting with "think:": a `<think>` block, then "Done.";
- a chat prompt: "You said: <last user message>. The end.";
- plain text (no chat markers): " and so on, and so on."
It streams one token per piece, honours max_new_tokens and counts the end-of-turn token like hf.
`LiveServer` runs an app under uvicorn on loopback in a thread (here, not in conftest.py, so test modules
can import it whichever conftest pytest loaded first).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from tunelab.infer.detokenize import IncrementalDecoder
from tunelab.infer.engine import Engine, TextStream
from tunelab.infer.params import SamplingParams

API_KEY = "sk-test-0123456789"
TOOL_ANSWER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def scripted_answer(prompt: str) -> str:
    users = re.findall(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", prompt, re.DOTALL)
    last = users[-1] if users else ""
    results = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", last, re.DOTALL)
    if results:
        return f"Tool said: {results[-1]}."
    if last.startswith("think:"):
        return "<think>\nLet me see.\n</think>\n\nDone."
    if "<tools>" in prompt:
        return TOOL_ANSWER
    if "<|im_start|>" not in prompt:
        return " and so on, and so on."
    return f"You said: {last}. The end."


class FakeStream(TextStream):
    def __init__(self, engine: FakeEngine, prompt_ids: list[int], params: SamplingParams) -> None:
        super().__init__(params, len(prompt_ids))
        self.engine = engine
        self.prompt_ids = prompt_ids
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def _pieces(self) -> Iterator[str]:
        tok = self.engine.tokenizer
        answer = scripted_answer(tok.decode(self.prompt_ids))
        ids = tok.encode(answer, add_special_tokens=False) + [self.engine.stop_ids[0]]
        limit = self.params.max_new_tokens or len(ids)
        decoder = IncrementalDecoder(tok)
        self.engine.started += 1
        for token in ids[:limit]:
            if self.cancelled.is_set():
                return
            if self.engine.delay:
                time.sleep(self.engine.delay)
            self.completion_tokens += 1
            if token in self.engine.stop_ids:
                self.finish_reason = "stop"
                return
            text = decoder.push(token)
            if text:
                yield text
        self.finish_reason = "length"


class FakeEngine(Engine):
    def __init__(self, tokenizer: Any, *, delay: float = 0.0) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
        self.max_context = 4096
        self.delay = delay
        self.started = 0
        self.last_params: SamplingParams | None = None
        self.last_prompt = ""

    def stream(self, prompt_ids: list[int], params: SamplingParams) -> TextStream:
        self.last_params = params
        self.last_prompt = self.tokenizer.decode(prompt_ids)
        return FakeStream(self, prompt_ids, params)


class FakeScorer:
    """Scores a text by its length, so tests know the exact answer."""

    def score(self, texts: list[str], max_length: int | None = None) -> list[float]:
        return [float(len(t)) for t in texts]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving an app in a thread, on 127.0.0.1 and a free port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
