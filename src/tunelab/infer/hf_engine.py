"""The default engine: transformers' `generate` in a worker thread, streamed token by token.

`generate` blocks, so it runs in its own thread and hands each new token to a queue (a
`BaseStreamer`); the caller's iterator decodes them incrementally. A queue of ids rather than
transformers' `TextIteratorStreamer` gives exact token counts (the API reports `usage`), the finish
reason (end-of-turn token or length) and correct text for characters spanning tokens. Cancelling
(stop string found, client gone) sets an event that a stopping criterion checks every step.
A multimodal model's media tensors (`PromptMedia.tensors`) go to `generate` beside the ids, on the
model's device, floating ones in the model's dtype (the processor returns float32 pixels).
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from tunelab.infer.detokenize import IncrementalDecoder
from tunelab.infer.engine import Engine, PromptMedia, TextStream
from tunelab.infer.params import SamplingParams

logger = logging.getLogger("tunelab.infer")

_END = object()


class _IdQueueStreamer:
    """transformers streamer protocol (`put` / `end`): the generated ids, one queue item per step."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first puts the prompt
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(_END)


def _cancel_criterion(event: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria

    class CancelCriterion(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return CancelCriterion()


class HfTextStream(TextStream):
    def __init__(self, engine: HfEngine, prompt_ids: list[int], params: SamplingParams,
                 media: PromptMedia | None = None) -> None:
        super().__init__(params, len(prompt_ids))
        self._media = media
        self._engine = engine
        self._cancelled = threading.Event()
        self._streamer = _IdQueueStreamer()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(prompt_ids,), daemon=True, name="tunelab-generate")
        self._thread.start()

    def _run(self, prompt_ids: list[int]) -> None:
        try:
            self._engine.run_generate(prompt_ids, self.params, self._streamer, self._cancelled, self._media)
        except BaseException as error:  # surfaced to the consumer thread
            self._error = error
            self._streamer.end()

    def cancel(self) -> None:
        self._cancelled.set()

    def _pieces(self) -> Iterator[str]:
        decoder = IncrementalDecoder(self._engine.tokenizer, skip_special_tokens=self.params.skip_special_tokens)
        stop_ids = set(self._engine.stop_ids)
        last = None
        try:
            while True:
                item = self._streamer.queue.get()
                if item is _END:
                    break
                for token in item:
                    self.completion_tokens += 1
                    last = token
                    if token in stop_ids:
                        continue  # the end-of-turn token ends the answer, it is not part of it
                    text = decoder.push(token)
                    if text:
                        yield text
            if self._error is not None:
                raise RuntimeError(f"generation failed: {self._error}") from self._error
            tail = decoder.flush()
            if tail:
                yield tail
            self.finish_reason = "stop" if last in stop_ids else self._length_or_stop()
        finally:
            self._cancelled.set()
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

    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids)
        self.max_context = _max_context(model.config)
        self._seed_lock = threading.Lock()

    def describe(self) -> str:
        return f"huggingface ({type(self.model).__name__}, {self.model.dtype}, {self.model.device})"

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

    def run_generate(self, prompt_ids: list[int], params: SamplingParams, streamer: Any, cancelled: threading.Event,
                     media: PromptMedia | None = None) -> None:
        """Blocking generation into `streamer` (runs in the stream's worker thread)."""
        import torch
        from transformers import StoppingCriteriaList

        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.model.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "generation_config": self.generation_config(params),
            "stopping_criteria": StoppingCriteriaList([_cancel_criterion(cancelled)]),
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
