"""Dynamic batching for the hf engine: one scheduler thread owns the model and decodes every waiting
sequence together, so throughput grows with the number of clients instead of their wait.

Between two decoding steps the scheduler drops the sequences that were cancelled (a client went away:
its work stops within one step), admits waiting ones up to `max_batch` (the request with the fewest rows
first, then the oldest: a request's n choices cannot crowd out the requests behind it), prefills each
newcomer alone (its first token is then exactly the one it gets alone) and stacks it into the batch's
left-padded cache (`infer/batch_cache.py`); one forward pass then gives every row its next token, which
each sequence chooses by its own rules (`infer/sampling.py`) and hands to its `TokenSink`.

Why not transformers' continuous batching (`generate_batch`, paged attention): on this project's CPU
runners it took 21 s for 4 prompts x 8 tokens of the tiny test model (plain `generate`, one prompt after
the other: 2.1 s for 32 prompts x 24 tokens), and it applies one generation config to all requests,
where every request here brings its own logits processors (penalties, logit bias, grammars) and seed.

Greedy answers are the same in a batch as alone: on the tiny Qwen2 (float32, CPU), 32 prompts decoded
16 at a time gave token for token the answers `generate` gives each alone, and so did 576 answers under
load (tests/infer/test_batching.py, benchmarks/api_load.py, docs/benchmarks.md). Stacking changes the
shapes of the matrix products, so the last bits of the logits may differ; only a near-tie between the
two best tokens could change a greedy answer (float32 keeps that rare; bfloat16 makes it likelier).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tunelab.infer.batch_cache import BatchCache, stackable
from tunelab.infer.engine import TokenLogprob
from tunelab.infer.sampling import TokenChooser

logger = logging.getLogger("tunelab.infer")

END = object()  # the last item of a sink's queue


class TokenSink:
    """Where a generation's tokens go, shared by the producer (the scheduler, or a `generate` thread) and
    the consumer (the stream): token ids in order, their log-probs when asked, then `END`; `error` when
    generating failed; `cancelled` set by the consumer, read by the producer between steps."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.logprobs: list[TokenLogprob] = []
        self.cancelled = threading.Event()
        self.error: BaseException | None = None

    def put(self, tokens: list[int], logprobs: list[TokenLogprob] | None = None) -> None:
        if logprobs:
            self.logprobs.extend(logprobs)  # before the tokens: the consumer reads them as it counts tokens
        self.queue.put(tokens)

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.error = error
        self.queue.put(END)

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass(eq=False)  # compared and hashed by identity: a sequence is its own group
class Sequence:
    """One generation in the scheduler: its prompt, its rules, how many tokens it may make, its sink."""

    prompt_ids: list[int]
    chooser: TokenChooser
    limit: int
    stop_ids: frozenset[int]
    sink: TokenSink
    group: object = None  # the request it belongs to (engine.request_group); None: its own
    generated: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.group is None:
            self.group = self

    def ids(self, device: Any) -> Any:
        """Prompt and generated ids, [1, n]: what the sequence's processors see."""
        import torch

        return torch.tensor([self.prompt_ids + self.generated], device=device)

    def accept(self, token: int, logprob: TokenLogprob | None) -> bool:
        """Record and send one token; True when the sequence is finished."""
        self.generated.append(token)
        self.sink.put([token], [logprob] if logprob is not None else None)
        return token in self.stop_ids or len(self.generated) >= self.limit


class Batcher:
    """The scheduler thread and its queue. `submit` returns at once; the thread starts on first use."""

    def __init__(self, model: Any, max_batch: int) -> None:
        self.model = model
        self.max_batch = max_batch
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        self._batch = BatchCache()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def state(self) -> dict[str, int]:
        with self._wake:
            return {"decoding": len(self._active), "waiting": len(self._waiting)}

    def submit(self, sequence: Sequence) -> None:
        with self._wake:
            self._waiting.append(sequence)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="tunelab-batcher")
                self._thread.start()
            self._wake.notify()

    def wake(self) -> None:
        """Let the scheduler look at its queue now (a waiting sequence was cancelled)."""
        with self._wake:
            self._wake.notify()

    # -- the scheduler thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        import torch

        while True:
            newcomers: list[Sequence] = []
            try:
                with self._wake:
                    while not self._active and not self._waiting:
                        self._wake.wait()
                    newcomers = self._admit()
                with torch.inference_mode():
                    self._drop([row for row, seq in enumerate(self._active) if seq.sink.cancelled.is_set()])
                    self._prefill(newcomers)
                    if self._active:
                        self._step()
            except Exception as error:  # noqa: BLE001 (the thread must live on; every consumer concerned hears of it)
                logger.exception("batched generation failed")
                with self._wake:
                    failed, self._active = self._active + newcomers, []
                    if not newcomers:  # it failed choosing among the waiting: they would fail again
                        failed += list(self._waiting)
                        self._waiting.clear()
                for seq in failed:
                    seq.sink.end(error)
                self._batch = BatchCache()

    def _admit(self) -> list[Sequence]:
        """Waiting sequences that fit in the batch: of the request with the fewest rows, the oldest first;
        cancelled ones end without running."""
        taken: list[Sequence] = []
        for seq in [s for s in self._waiting if s.sink.cancelled.is_set()]:
            self._waiting.remove(seq)
            seq.sink.end()
        rows = Counter(seq.group for seq in self._active)
        while self._waiting and len(self._active) + len(taken) < self.max_batch:
            seq = min(self._waiting, key=lambda s: rows[s.group])  # min keeps the first (oldest) of equals
            self._waiting.remove(seq)
            rows[seq.group] += 1
            taken.append(seq)
        return taken

    def _prefill(self, newcomers: list[Sequence]) -> None:
        """Each newcomer's prompt alone (its first token is exactly its own), then into the batch."""
        from transformers import DynamicCache

        device = self.model.device
        joined: list[tuple[Any, int]] = []
        for seq in newcomers:
            if seq.sink.cancelled.is_set():
                seq.sink.end()
                continue
            ids = seq.ids(device)
            cache = DynamicCache(config=self.model.config)
            out = self.model(input_ids=ids, attention_mask=ids.new_ones(ids.shape), cache=cache, use_cache=True,
                             logits_to_keep=1)
            token, logprob = seq.chooser.choose(ids, out.logits[:, -1, :].float())
            if seq.accept(token, logprob):
                seq.sink.end()
                continue
            joined.append((cache, ids.shape[1]))
            with self._wake:
                self._active.append(seq)
        self._batch.join(joined)

    def _step(self) -> None:
        """One forward pass for every row; each sequence takes its token; finished rows leave."""

        device = self.model.device
        last = [seq.generated[-1] for seq in self._active]
        out = self.model(**self._batch.step_inputs(last, device))
        self._batch.advance()
        logits = out.logits[:, -1, :].float()
        greedy = logits.max(dim=-1).indices.tolist()  # argmax's first-maximum rule; 3x faster than argmax on CPU
        finished = []
        for row, seq in enumerate(self._active):
            if seq.chooser.plain_greedy:
                token, logprob = greedy[row], None
            else:
                token, logprob = seq.chooser.choose(seq.ids(device), logits[row : row + 1])
            if seq.accept(token, logprob):
                finished.append(row)
        self._drop(finished)

    def _drop(self, rows: list[int]) -> None:
        if not rows:
            return
        gone = [self._active[row] for row in rows]
        with self._wake:
            self._active = [seq for row, seq in enumerate(self._active) if row not in set(rows)]
        self._batch.drop(rows)
        for seq in gone:
            seq.sink.end()


def batchable(model: Any) -> bool:
    """Whether the model's rows can be decoded together: a text-only transformers model (a multimodal one computes its own
    positions, e.g. Qwen2-VL's 3-D rope, which one position per row would not match) whose cache, after one
    forward pass of one token, is one this module can stack."""
    import torch
    from transformers import DynamicCache

    config = model.config
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel: the model inside
    if not type(base).__module__.startswith("transformers.models."):
        # remote code and tunelab's native legacy families (yuan2's gated cache needs earlier steps' state the
        # stacked cache does not carry): decode them one at a time, as their own code was written to
        logger.info("batched decoding is off for %s (not a transformers model class): one sequence at a time",
                    type(base).__name__)
        return False
    if hasattr(config, "get_text_config") and config.get_text_config() is not config:
        logger.info("batched decoding is off for the multimodal %s: one sequence at a time", type(model).__name__)
        return False
    cache = DynamicCache(config=config)
    with torch.inference_mode():
        ids = torch.zeros((1, 1), dtype=torch.long, device=model.device)
        try:
            model(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True, logits_to_keep=1)
        except TypeError as error:  # a model whose forward takes other arguments
            logger.info("batched decoding is off for %s (%s): one sequence at a time", type(model).__name__, error)
            return False
    if not stackable(cache):
        logger.info("batched decoding is off for %s (its cache cannot be stacked): one sequence at a time",
                    type(model).__name__)
        return False
    return True
