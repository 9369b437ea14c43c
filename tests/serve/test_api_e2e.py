"""`tunelab api` for real: a tiny Qwen2 served by a separate process on loopback, driven by the
`openai` package, then loaded by `benchmarks/api_load.py` from a third process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _serve_fakes import free_port

from tunelab.testing import TinyModelSpec, build_tiny_model

openai = pytest.importorskip("openai")
REPO = Path(__file__).resolve().parents[2]
API = "import sys; from tunelab.cli.cmd_api import main; sys.exit(main(sys.argv[1:]))"
KEY = "sk-e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("api-e2e")
    model = build_tiny_model(root / "model", family="qwen2", spec=TinyModelSpec(tie_word_embeddings=False), seed=3)
    config = root / "infer.yaml"
    config.write_text(f"model_name_or_path: {model}\nadapter_name_or_path: null\ntemplate: qwen\n"
                      "infer_backend: huggingface\n", encoding="utf-8")
    port = free_port()
    env = {**os.environ, "API_PORT": str(port), "API_KEY": KEY, "API_MODEL_NAME": "tiny",
           "API_MAX_CONCURRENT": "2", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TUNELAB_CACHE": str(root / "cache")}
    env.pop("API_HOST", None)
    log = (root / "server.log").open("w")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen([sys.executable, "-c", API, str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"  # API_HOST unset: loopback is the default
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tunelab api exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def client(server: str) -> Any:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=60)


def test_real_model_chat_stream_and_usage(client: Any) -> None:
    assert [m.id for m in client.models.list().data] == ["tiny"]
    messages = [{"role": "user", "content": "hello"}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 6
    text = reply.choices[0].message.content
    assert text
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text  # same greedy answer, streamed
    stop = text[2:5]
    cut = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    completion = client.completions.create(model="tiny", prompt="Once upon", max_tokens=4, temperature=0)
    assert completion.usage.completion_tokens == 4


def test_real_model_auth(server: str) -> None:
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])


def test_bounded_load_from_a_second_process(server: str, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "api_load.py"), "--url", server, "--api-key", KEY,
         "--requests", "24", "--concurrency", "24", "--max-tokens", "8", "--deadline", "90", "--json", str(out)],
        capture_output=True, text=True, timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert (summary["answered_correctly"], summary["failed"], summary["lost"]) == (24, 0, 0)
    assert summary["completion_tokens"] == 24 * 8


def test_load_script_refuses_non_loopback_targets() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "api_load.py"), "--url", "http://10.0.0.1:8000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "loopback" in done.stderr
