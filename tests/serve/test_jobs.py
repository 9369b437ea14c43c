"""ChatJob / CompletionJob as the scheduler drives them: every choice starts before any is read (the engine can
decode them together), `cancel()` stops every started stream and refuses later starts, and the totals the
per-request caps read (`count`, `max_new_tokens_total`)."""

from __future__ import annotations

from typing import Any

import pytest

from tunelab.serve.chat_routes import ChatJob
from tunelab.serve.completion_routes import CompletionJob
from tunelab.serve.errors import RequestCancelled
from tunelab.serve.protocol import ChatCompletionRequest, CompletionRequest

HI = [{"role": "user", "content": "hi"}]


def _record_order(chat_model: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """'start' when a stream is created, 'read' when one is first read."""
    from _serve_fakes import FakeStream

    order: list[str] = []
    create, pieces = chat_model.engine.stream, FakeStream._pieces

    def stream(*args: Any, **kwargs: Any) -> Any:
        order.append("start")
        return create(*args, **kwargs)

    def read(self: Any) -> Any:
        order.append("read")
        yield from pieces(self)

    monkeypatch.setattr(chat_model.engine, "stream", stream)
    monkeypatch.setattr(FakeStream, "_pieces", read)
    return order


def test_whole_answers_start_every_choice_before_reading_any(make_chat_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_model = make_chat_model()
    order = _record_order(chat_model, monkeypatch)
    job = ChatJob(chat_model, ChatCompletionRequest(messages=HI, n=3), "m")
    answers = job.run_all()
    assert order == ["start"] * 3 + ["read"] * 3
    assert [a.result.text for a in answers] == ["You said: hi. The end."] * 3
    order.clear()
    CompletionJob(chat_model, CompletionRequest(prompt=["a", "b"], n=2), "m").run_all()
    assert order == ["start"] * 4 + ["read"] * 4


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_cancel_stops_started_streams_and_refuses_later_starts(make_chat_model: Any, kind: str) -> None:
    chat_model = make_chat_model()
    job: Any = (ChatJob(chat_model, ChatCompletionRequest(messages=HI, n=3, max_tokens=10), "m") if kind == "chat"
                else CompletionJob(chat_model, CompletionRequest(prompt=["a", "b"], n=3, max_tokens=10), "m"))
    assert (job.count, job.max_new_tokens_total) == ((3, 30) if kind == "chat" else (6, 60))
    first = job.start(0)
    job.cancel()
    job.cancel()  # idempotent
    assert first.cancelled.is_set()
    with pytest.raises(RequestCancelled):
        job.start(1)


def test_totals_fall_back_to_the_servers_default(make_chat_model: Any) -> None:
    chat_model = make_chat_model()  # max_new_tokens=256 by default
    job = ChatJob(chat_model, ChatCompletionRequest(messages=HI, n=2), "m")
    assert job.max_new_tokens_total == 512
    assert ChatJob(chat_model, ChatCompletionRequest(messages=HI, max_completion_tokens=7), "m").max_new_tokens_total == 7
