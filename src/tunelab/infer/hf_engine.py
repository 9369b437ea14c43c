"""The default engine: transformers models, streamed token by token, many requests decoded together.

Text prompts go to the batcher (`infer/batching.py`): one scheduler thread decodes up to `max_batch`
sequences in each forward pass, so concurrent requests share the model's work. Beam search (the best
beam is known only at the end), prompts with media tensors, models whose cache cannot be stacked and
`max_batch` 1 (API_MAX_BATCH=1: one generation at a time, the engine tunelab had before batching) run
transformers' `generate` in a worker thread per stream instead, one sequence per call.

Both paths hand ids to a `TokenSink` queue that the stream's iterator decodes incrementally: exact token
counts (the API reports `usage`), the finish reason (end-of-turn token or length) and correct text for
characters spanning tokens. Cancelling (stop string found, client gone) sets the sink's flag: the
batcher drops the sequence before its next step, `generate` stops at its next step (a stopping
criterion). Every sequence gets its request's logits processors (`infer/logits_processors.py`) and,
when asked, its tokens' log-probs. A multimodal model's media tensors (`PromptMedia.tensors`) go to
`generate` beside the ids, on the model's device, floating ones in the model's dtype.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator
from typing import Any

from tunelab.infer.batching import END, Batcher, Sequence, TokenSink, batchable
from tunelab.infer.detokenize import IncrementalDecoder
from tunelab.infer.engine import Engine, PromptMedia, TextStream, request_group
from tunelab.infer.params import SamplingParams
from tunelab.infer.sampling import TokenChooser, request_processors_for, token_logprob

logger = logging.getLogger("tunelab.infer")

DEFAULT_MAX_BATCH = 16  # API_MAX_BATCH's default (serve/settings.py); `tunelab chat` and the board use it too


class _SinkStreamer:
    """transformers streamer protocol (`put` / `end`) into a sink: the generated ids, one item per step."""

    def __init__(self, sink: TokenSink) -> None:
        self.sink = sink
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first puts the prompt
            self._prompt_seen = True
            return
        self.sink.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.sink.end()


def _cancel_criterion(event: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria

    class CancelCriterion(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return CancelCriterion()


def _logprob_recorder(sink: TokenSink, top: int) -> Any:
    """A last logits processor of `generate`'s list: it sees the scores after the request's processors
    and before the sampling warpers (transformers appends those after the caller's processors)."""
    from transformers import LogitsProcessor

    class LogprobRecorder(LogitsProcessor):
        def __init__(self) -> None:
            self.scores: Any = None

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            self.scores = scores.float()
            return scores

    class RecordingStreamer(_SinkStreamer):
        def put(self, value: Any) -> None:
            if self._prompt_seen and recorder.scores is not None:
                tokens = value.reshape(-1).tolist()
                sink.logprobs.extend(token_logprob(recorder.scores, t, top) for t in tokens)
            super().put(value)

    recorder = LogprobRecorder()
    return recorder, RecordingStreamer(sink)


class HfTextStream(TextStream):
    def __init__(self, engine: HfEngine, prompt_ids: list[int], params: SamplingParams,
                 media: PromptMedia | None = None) -> None:
        super().__init__(params, len(prompt_ids))
        self._engine = engine
        self._sink = TokenSink()
        self._thread: threading.Thread | None = None
        processors = request_processors_for(params, engine.tokenizer, prompt_ids)
        if engine.batches(params, media):
            chooser = TokenChooser(params, processors, engine.model.device)
            engine.batcher.submit(Sequence(list(prompt_ids), chooser, engine.token_limit(len(prompt_ids), params),
                                           frozenset(engine.stop_ids), self._sink, group=request_group.get()))
        else:
            self._thread = threading.Thread(target=self._run, args=(prompt_ids, processors, media), daemon=True,
                                            name="tunelab-generate")
            self._thread.start()

    def _run(self, prompt_ids: list[int], processors: list[Any], media: PromptMedia | None) -> None:
        try:
            self._engine.run_generate(prompt_ids, self.params, self._sink, processors, media)
        except BaseException as error:  # surfaced to the consumer thread
            self._sink.end(error)

    def cancel(self) -> None:
        self._sink.cancel()
        if self._thread is None:
            self._engine.batcher.wake()

    def _pieces(self) -> Iterator[str]:
        decoder = IncrementalDecoder(self._engine.tokenizer, skip_special_tokens=self.params.skip_special_tokens)
        stop_ids = set(self._engine.stop_ids)
        record = self.params.logprobs is not None
        last = None
        try:
            while True:
                item = self._sink.queue.get()
                if item is END:
                    break
                for token in item:
                    if record and len(self._sink.logprobs) > self.completion_tokens:
                        self.token_logprobs.append(self._sink.logprobs[self.completion_tokens])
                    self.completion_tokens += 1
                    last = token
                    if token in stop_ids:
                        continue  # the end-of-turn token ends the answer, it is not part of it
                    text = decoder.push(token)
                    if text:
                        yield text
            if self._sink.error is not None:
                raise RuntimeError(f"generation failed: {self._sink.error}") from self._sink.error
            tail = decoder.flush()
            if tail:
                yield tail
            self.finish_reason = "stop" if last in stop_ids else self._length_or_stop()
        finally:
            self.cancel()
            if self._thread is not None:
                self._thread.join()

    def _length_or_stop(self) -> str:
        limit = self.params.max_new_tokens
        if limit is None and self.params.max_length is not None:
            limit = self.params.max_length - self.prompt_tokens
        return "length" if limit is not None and self.completion_tokens >= limit else "stop"


def _max_context(config: Any) -> int | None:
    """The model's context length: a multimodal model's sits in its text config."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(text_config, "max_position_embeddings", None) or getattr(config, "max_position_embeddings", None)


class HfEngine(Engine):
    """A transformers causal LM (adapters already applied) and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int], *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids)
        self.max_context = _max_context(model.config)
        self.batcher = Batcher(self.model, max_batch)
        self._batchable: bool | None = None  # probed on the first text prompt
        self._seed_lock = threading.Lock()

    def describe(self) -> str:
        return f"huggingface ({type(self.model).__name__}, {self.model.dtype}, {self.model.device})"

    def set_max_batch(self, max_batch: int) -> None:
        self.batcher.max_batch = max_batch

    def scheduler_state(self) -> dict[str, int] | None:
        return self.batcher.state()

    def batches(self, params: SamplingParams, media: PromptMedia | None) -> bool:
        """Whether a generation goes to the batcher (else: `generate` in a thread of its own)."""
        if params.num_beams > 1 or (media is not None and media.tensors) or self.batcher.max_batch <= 1:
            return False
        if self._batchable is None:
            self._batchable = batchable(self.model)
        return self._batchable

    def token_limit(self, prompt_tokens: int, params: SamplingParams) -> int:
        """New tokens a generation may make: max_new_tokens, else what max_length (or the model) leaves."""
        if params.max_new_tokens is not None:
            return params.max_new_tokens
        total = params.max_length or self.max_context or self.model.generation_config.max_length
        return max(1, total - prompt_tokens)

    def stream(self, prompt_ids: list[int], params: SamplingParams, media_inputs: PromptMedia | None = None) -> TextStream:
        return HfTextStream(self, prompt_ids, params, media_inputs)

    def media_kwargs(self, media: PromptMedia | None) -> dict[str, Any]:
        """The media tensors as `generate` takes them: on the model's device, floats in its dtype."""
        if media is None:
            return {}
        out: dict[str, Any] = {}
        for key, value in media.tensors.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                value = value.to(self.model.device, dtype=self.model.dtype)
            elif hasattr(value, "to"):
                value = value.to(self.model.device)
            out[key] = value
        return out

    def generation_config(self, params: SamplingParams) -> Any:
        """The model's generation config with this request's settings (a copy: requests run concurrently)."""
        config = copy.deepcopy(self.model.generation_config)
        settings: dict[str, Any] = {
            "do_sample": not params.greedy,
            "num_beams": params.num_beams,
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "length_penalty": params.length_penalty,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.max_new_tokens is None and params.max_length is not None:
            settings["max_length"] = params.max_length
        if params.greedy:
            settings.update(temperature=None, top_p=None, top_k=None)
        else:
            settings.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        config.update(**settings)
        return config

    def run_generate(self, prompt_ids: list[int], params: SamplingParams, sink: TokenSink, processors: list[Any],
                     media: PromptMedia | None = None) -> None:
        """Blocking generation into `sink` (runs in the stream's worker thread); `processors`: the request's."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.model.device)
        streamer: Any = _SinkStreamer(sink)
        processors = list(processors)
        if params.logprobs is not None and params.num_beams == 1:
            recorder, streamer = _logprob_recorder(sink, params.logprobs)
            processors.append(recorder)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "generation_config": self.generation_config(params),
            "stopping_criteria": StoppingCriteriaList([_cancel_criterion(sink.cancelled)]),
            "logits_processor": LogitsProcessorList(processors),
            **self.media_kwargs(media),
        }
        with torch.inference_mode():
            if params.num_beams > 1:  # beam search cannot stream: the best beam is known at the end
                output = self._generate(kwargs, params.seed)
                streamer.put(input_ids[0])
                streamer.put(output[0, input_ids.shape[1] :])
                streamer.end()
            else:
                self._generate({**kwargs, "streamer": streamer}, params.seed)

    def _generate(self, kwargs: dict[str, Any], seed: int | None) -> Any:
        if seed is None:
            return self.model.generate(**kwargs)
        import torch

        # torch's sampling RNG is global: seeding is exact when no other request samples meanwhile.
        with self._seed_lock:
            torch.manual_seed(seed)
            return self.model.generate(**kwargs)
