"""Schemathesis fuzzes the API from its own OpenAPI schema: whatever a client sends, the server
answers without a 500, a crash or a hang (bounded; `TUNELAB_FUZZ_EXAMPLES` per operation)."""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")

from _serve_fakes import API_KEY  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

EXAMPLES = int(os.environ.get("TUNELAB_FUZZ_EXAMPLES", "80"))


@pytest.fixture(scope="module")
def api_app(qwen_tokenizer):
    from _serve_fakes import FakeEngine

    from tunelab.data.templates import get_template
    from tunelab.infer.chat_model import ChatModel
    from tunelab.infer.params import SamplingParams
    from tunelab.serve.app import create_app
    from tunelab.serve.settings import ServerSettings

    engine = FakeEngine(qwen_tokenizer)
    chat_model = ChatModel(engine, get_template("qwen", qwen_tokenizer), SamplingParams(max_new_tokens=16),
                           name="fake-model")
    # schemathesis' ASGI client calls itself "testserver" (its Host header)
    return create_app(chat_model, ServerSettings(api_key=API_KEY, allowed_hosts=("testserver",)))


def test_no_operation_answers_with_a_server_error(api_app):
    from hypothesis import given

    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app, headers={"Authorization": f"Bearer {API_KEY}"})
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/models", "/v1/chat/completions"}
    tried: dict[str, int] = {}
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def fuzz(case):
            tried[case.path] = tried.get(case.path, 0) + 1
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {API_KEY}"}
            response = case.call(timeout=30)
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])

        fuzz()
    assert set(tried) == {op.path for op in operations}
    print("fuzzed:", tried)
