"""The hf engine's batcher on a real tiny Qwen2: answers in a batch equal answers alone, every sequence
keeps its own rules (seed, logits processors, log-probs), cancelling drops one row and nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tunelab.infer.batch_cache import BatchCache
from tunelab.infer.engine import TextStream
from tunelab.infer.hf_engine import HfEngine
from tunelab.infer.params import SamplingParams

GREEDY = SamplingParams(do_sample=False, max_new_tokens=12)


@pytest.fixture(scope="module")
def parts(tiny_model_dir: Path) -> tuple[Any, Any, list[int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tokenizer, [tokenizer.convert_tokens_to_ids("<|im_end|>")]


@pytest.fixture
def engine(parts: tuple[Any, Any, list[int]]) -> Callable[[int], HfEngine]:
    def make(max_batch: int) -> HfEngine:
        model, tokenizer, stop_ids = parts
        return HfEngine(model, tokenizer, stop_ids, max_batch=max_batch)

    return make


def prompts(tokenizer: Any, count: int) -> list[list[int]]:
    """Prompts of different lengths (3 to ~40 tokens): the batch pads them differently."""
    return [tokenizer(f"Question {i}: " + "what lives in the deep sea? " * (i % 6))["input_ids"] for i in range(count)]


def alone(model: Any, ids: list[int], params: SamplingParams, stop_ids: list[int]) -> list[int]:
    """transformers' own answer for one prompt, with nothing else running."""
    import torch

    kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "eos_token_id": stop_ids, "pad_token_id": 0}
    if params.greedy:
        kwargs["do_sample"] = False
    else:
        torch.manual_seed(params.seed)
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    output = model.generate(torch.tensor([ids]), **kwargs)
    return output[0, len(ids):].tolist()


def read_together(engine: HfEngine, jobs: list[tuple[list[int], SamplingParams]]) -> tuple[list[str], list[TextStream]]:
    """Start every stream before the scheduler's first step, read each in its own thread; texts in order."""
    streams = [engine.stream(ids, params) for ids, params in jobs]
    texts: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i, s=s: texts.__setitem__(i, s.text())) for i, s in enumerate(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [texts[i] for i in range(len(streams))], streams


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_greedy_answers_in_a_batch_equal_each_alone(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    model, tokenizer, stop_ids = parts
    batched = engine(4)
    seen: list[int] = []
    original = batched.batcher._step

    def step() -> None:  # record how many rows each step decoded: the test must really batch
        seen.append(len(batched.batcher._active))
        original()

    batched.batcher._step = step  # type: ignore[method-assign]
    jobs = [(ids, SamplingParams(do_sample=False, max_new_tokens=6 + 3 * (i % 4)))
            for i, ids in enumerate(prompts(tokenizer, 10))]
    texts, streams = read_together(batched, jobs)
    expected = [tokenizer.decode(alone(model, ids, params, stop_ids), skip_special_tokens=True) for ids, params in jobs]
    assert texts == expected
    assert [s.completion_tokens for s in streams] == [len(alone(model, i, p, stop_ids)) for i, p in jobs]
    assert max(seen) == 4 and len(set(seen)) > 1  # full batches, rows leaving and joining mid-flight


def test_seeded_sampling_is_the_same_in_a_batch_as_alone(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    model, tokenizer, stop_ids = parts
    first, second = prompts(tokenizer, 2)
    ids = [first, second, first]
    seeded = [SamplingParams(temperature=1.0, top_p=0.9, top_k=40, seed=seed, max_new_tokens=10) for seed in (5, 6, 5)]
    texts, _ = read_together(engine(8), list(zip(ids, seeded, strict=True)))
    expected = [tokenizer.decode(alone(model, i, p, stop_ids), skip_special_tokens=True) for i, p in zip(ids, seeded, strict=True)]
    assert texts == expected  # a torch.Generator per sequence draws what torch.manual_seed(seed) draws alone
    assert texts[0] == texts[2]  # the same prompt and seed side by side: the same draws


def test_each_sequence_keeps_its_own_logits_processors(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    _, tokenizer, _ = parts
    forced = tokenizer.convert_tokens_to_ids("sea")
    ids = prompts(tokenizer, 2)
    biased = SamplingParams(do_sample=False, max_new_tokens=5, logit_bias=((forced, 100.0),))
    plain = SamplingParams(do_sample=False, max_new_tokens=5)
    (biased_text, plain_text), _ = read_together(engine(4), [(ids[0], biased), (ids[1], plain)])
    assert biased_text == "sea" * 5
    assert plain_text == engine(1).stream(ids[1], plain).text()  # its batch neighbour's bias did not leak


def test_logprobs_are_recorded_per_token_on_both_paths(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    import torch

    model, tokenizer, _ = parts
    ids = prompts(tokenizer, 1)[0]
    params = SamplingParams(do_sample=False, max_new_tokens=4, logprobs=3)
    batched, generated = engine(4).stream(ids, params), engine(1).stream(ids, params)
    batched.text(), generated.text()
    assert len(batched.token_logprobs) == batched.completion_tokens == 4
    first = batched.token_logprobs[0]
    with torch.inference_mode():
        expected = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    assert first.token_id == int(expected.argmax())
    assert first.logprob == pytest.approx(float(expected.max()), abs=1e-4)
    assert [t for t, _ in first.top] == expected.topk(3).indices.tolist()
    assert [(t.token_id, round(t.logprob, 3)) for t in generated.token_logprobs] == \
        [(t.token_id, round(t.logprob, 3)) for t in batched.token_logprobs]


def test_a_cancelled_sequence_leaves_the_batch_and_the_others_go_on(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    model, tokenizer, stop_ids = parts
    eng = engine(4)
    ids = prompts(tokenizer, 2)
    long = eng.stream(ids[0], SamplingParams(do_sample=False, max_new_tokens=2000))
    other_params = SamplingParams(do_sample=False, max_new_tokens=40)
    other = eng.stream(ids[1], other_params)
    pieces = iter(long)
    next(pieces)
    long.close()
    assert wait_until(lambda: eng.scheduler_state() == {"decoding": 1, "waiting": 0}, 1.0)
    assert long.completion_tokens < 2000
    assert other.text() == tokenizer.decode(alone(model, ids[1], other_params, stop_ids), skip_special_tokens=True)
    assert wait_until(lambda: eng.scheduler_state() == {"decoding": 0, "waiting": 0}, 1.0)


def test_waiting_sequences_wait_in_order_and_a_cancelled_one_never_runs(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    _, tokenizer, _ = parts
    eng = engine(1)
    eng.set_max_batch(2)
    ids = prompts(tokenizer, 4)
    running = [eng.stream(i, SamplingParams(do_sample=False, max_new_tokens=2000)) for i in ids[:2]]
    queued = [eng.stream(i, SamplingParams(do_sample=False, max_new_tokens=3)) for i in ids[2:]]
    assert wait_until(lambda: eng.scheduler_state() == {"decoding": 2, "waiting": 2}, 5.0)
    queued[0].cancel()
    assert queued[0].text() == "" and queued[0].completion_tokens == 0
    assert eng.scheduler_state() == {"decoding": 2, "waiting": 1}
    running[0].close()
    assert queued[1].text() and queued[1].completion_tokens == 3  # took the freed row
    running[1].close()
    assert wait_until(lambda: eng.scheduler_state() == {"decoding": 0, "waiting": 0}, 1.0)


def test_max_batch_one_is_the_one_at_a_time_generate_path(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    model, tokenizer, stop_ids = parts
    eng = engine(1)
    ids = prompts(tokenizer, 1)[0]
    stream: Any = eng.stream(ids, GREEDY)
    assert stream._thread is not None  # transformers' generate in a thread of its own, as before batching
    assert stream.text() == tokenizer.decode(alone(model, ids, GREEDY, stop_ids), skip_special_tokens=True)
    assert eng.scheduler_state() == {"decoding": 0, "waiting": 0}


def test_batch_cache_rows_join_and_leave_right_aligned() -> None:
    import torch
    from transformers import DynamicCache

    def single(length: int, value: float) -> DynamicCache:
        keys = torch.full((1, 2, length, 4), value)
        return DynamicCache(ddp_cache_data=[(keys, keys.clone())])

    batch = BatchCache()
    batch.join([(single(3, 1.0), 3), (single(5, 2.0), 5)])
    keys = batch.cache.layers[0].keys
    assert keys.shape == (2, 2, 5, 4)
    assert keys[0, 0, :, 0].tolist() == [0, 0, 1, 1, 1]  # left padding, right-aligned
    inputs = batch.step_inputs([7, 8], torch.device("cpu"))
    assert inputs["attention_mask"].tolist() == [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
    assert inputs["position_ids"].view(-1).tolist() == [3, 5]
    batch.drop([1])
    assert batch.cache.layers[0].keys.shape == (1, 2, 3, 4)  # the columns only the longer row needed are gone
    assert batch.lengths == [3]


def test_a_freed_row_goes_to_the_request_with_the_fewest_rows(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    import contextvars

    from tunelab.infer.engine import request_group

    _, tokenizer, _ = parts
    eng = engine(2)
    ids = prompts(tokenizer, 2)

    def start(group: object, params: SamplingParams) -> TextStream:
        def run() -> TextStream:
            request_group.set(group)
            return eng.stream(ids[0], params)

        return contextvars.copy_context().run(run)

    long = SamplingParams(do_sample=False, max_new_tokens=2000)
    many = [start("many choices", long) for _ in range(4)]  # two decode, two wait
    try:
        assert wait_until(lambda: eng.scheduler_state() == {"decoding": 2, "waiting": 2}, 5.0)
        other = start("another request", SamplingParams(do_sample=False, max_new_tokens=3))
        reader = threading.Thread(target=other.text)
        many[0].close()
        reader.start()
        reader.join(timeout=2)  # first in line for the freed row, before the older waiting choices (2000 tokens each)
        assert not reader.is_alive() and other.completion_tokens == 3
        assert wait_until(lambda: eng.scheduler_state() == {"decoding": 2, "waiting": 1}, 1.0)
    finally:
        for stream in many:
            stream.close()
    assert wait_until(lambda: eng.scheduler_state() == {"decoding": 0, "waiting": 0}, 1.0)


def test_multimodal_models_decode_one_sequence_at_a_time() -> None:
    from types import SimpleNamespace

    from transformers import Qwen2VLConfig

    from tunelab.infer.batching import batchable

    assert batchable(SimpleNamespace(config=Qwen2VLConfig())) is False  # decided before any forward pass


def test_close_from_another_thread_ends_a_read_in_progress(parts: Any, engine: Callable[[int], HfEngine]) -> None:
    """A server worker waits inside next() while the event loop closes the stream (the client left)."""
    _, tokenizer, _ = parts
    eng = engine(2)
    ids = prompts(tokenizer, 3)
    holders = [eng.stream(i, SamplingParams(do_sample=False, max_new_tokens=2000)) for i in ids[:2]]
    try:
        waiting = eng.stream(ids[2], GREEDY)  # the batch is full: its reader blocks in next()
        read: list[Any] = []
        reader = threading.Thread(target=lambda: read.append(list(waiting)))
        reader.start()
        assert wait_until(lambda: eng.scheduler_state() == {"decoding": 2, "waiting": 1}, 5.0)
        waiting.close()  # the reader's generator is executing: close must not raise, and must end the read
        reader.join(timeout=1)
        assert not reader.is_alive() and read == [[]]
    finally:
        for holder in holders:
            holder.close()
