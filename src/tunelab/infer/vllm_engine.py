"""The vLLM engine (`infer_backend: vllm`): fast batched generation on a CUDA GPU.

vllm is imported only here and only when this backend is chosen, so tunelab installs and runs
without it. The engine is vLLM's `AsyncLLMEngine`, driven from a private event loop thread so the
same synchronous `TextStream` interface as the hf engine works; vLLM batches concurrent requests
itself. A LoRA adapter (`adapter_name_or_path`, one folder) is served unmerged through a
`LoRARequest`, as vLLM recommends. A multimodal prompt goes in as vLLM's `multi_modal_data` (the decoded
pictures, clips, waveforms) with the prompt ids *before* the processor's expansion: vLLM runs the model's
processor itself and expands each placeholder as it does for its own chat route (`vllm_prompt`).
A request's OpenAI controls map to vLLM's own: presence / frequency penalties, logit_bias, logprobs
(vLLM's top-k per token, read into `TokenLogprob`s) and structured output (`StructuredOutputsParams`:
json_object, a JSON schema, or the lark grammar, which vLLM's "guidance" backend runs with the same
llguidance as the hf engine; the engine defaults to that backend unless `vllm_config` names another).
vLLM schedules and batches itself, so `set_max_batch` leaves it alone (its `max_num_seqs` is the
batch limit, settable through `vllm_config`).
Checked on the lent GPU machine, not in CI (no CUDA there).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from tunelab.errors import UserError, require_package
from tunelab.infer.engine import Engine, PromptMedia, TextStream, TokenLogprob
from tunelab.infer.params import SamplingParams

logger = logging.getLogger("tunelab.infer")


def structured_outputs(params: SamplingParams) -> Any:
    """The request's constraint as vLLM's `StructuredOutputsParams` (None without one)."""
    constraint = params.constraint
    if constraint is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if constraint.kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    if constraint.kind == "json_schema":
        return StructuredOutputsParams(json=dict(constraint.schema or {}))
    return StructuredOutputsParams(grammar=constraint.grammar)


def vllm_sampling_params(params: SamplingParams, stop_ids: list[int]) -> Any:
    """tunelab's settings in vLLM's terms (greedy = temperature 0)."""
    from vllm import SamplingParams as VllmParams

    extra: dict[str, Any] = {}
    if params.logit_bias:
        extra["logit_bias"] = dict(params.logit_bias)
    if params.logprobs is not None:
        extra["logprobs"] = params.logprobs
    constraint = structured_outputs(params)
    if constraint is not None:
        extra["structured_outputs"] = constraint
    return VllmParams(
        n=1,
        temperature=0.0 if params.greedy else params.temperature,
        top_p=1.0 if params.greedy else params.top_p,
        top_k=-1 if params.greedy or not params.top_k else params.top_k,
        repetition_penalty=params.repetition_penalty,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        max_tokens=params.max_new_tokens,
        stop_token_ids=list(stop_ids),
        stop=list(params.stop) or None,
        seed=params.seed,
        skip_special_tokens=params.skip_special_tokens,
        **extra,
    )


def token_logprobs(token_ids: list[int], entries: list[Any] | None, top: int) -> list[TokenLogprob]:
    """vLLM's per-token logprob dicts (token id -> Logprob with `.logprob`, `.rank`) as TokenLogprobs."""
    out = []
    for token, entry in zip(token_ids, entries or [], strict=False):
        ranked = sorted((item for item in entry.items() if item[1].rank is not None and item[1].rank <= top),
                        key=lambda item: item[1].rank)
        chosen = entry.get(token)
        out.append(TokenLogprob(token_id=int(token), logprob=float(chosen.logprob) if chosen is not None else float("nan"),
                                top=tuple((int(t), float(lp.logprob)) for t, lp in ranked)))
    return out


def vllm_prompt(prompt_ids: list[int], media: PromptMedia | None) -> dict[str, Any]:
    """vLLM's prompt (a `TokensPrompt`, a typed dict): the ids, and for a multimodal prompt the decoded
    media by modality ("image": [PIL images] ...) with the ids in which each picture is one placeholder."""
    if media is None or not media.raw:
        return {"prompt_token_ids": list(prompt_ids)}
    if media.placeholder_ids is None:
        raise ValueError("a multimodal prompt for vLLM needs its unexpanded ids (ChatModel fills them)")
    return {"prompt_token_ids": list(media.placeholder_ids), "multi_modal_data": dict(media.raw)}


class VllmTextStream(TextStream):
    def __init__(self, engine: VllmEngine, prompt_ids: list[int], params: SamplingParams,
                 media: PromptMedia | None = None) -> None:
        super().__init__(params, len(prompt_ids))
        self._engine = engine
        self._prompt = vllm_prompt(prompt_ids, media)
        self._request_id = uuid.uuid4().hex

    def cancel(self) -> None:
        self._engine.submit(self._engine.llm.abort(self._request_id))

    def _pieces(self) -> Iterator[str]:
        from vllm.inputs import TokensPrompt

        results = self._engine.llm.generate(
            TokensPrompt(**self._prompt),
            vllm_sampling_params(self.params, self._engine.stop_ids),
            self._request_id,
            lora_request=self._engine.lora_request,
        )
        sent = 0
        for output in self._engine.iterate(results):
            choice = output.outputs[0]
            if len(choice.text) > sent:
                yield choice.text[sent:]
                sent = len(choice.text)
            self.completion_tokens = len(choice.token_ids)
            if self.params.logprobs is not None and choice.logprobs:  # cumulative outputs: convert the new ones
                done = len(self.token_logprobs)
                self.token_logprobs += token_logprobs(list(choice.token_ids)[done:], list(choice.logprobs)[done:],
                                                      self.params.logprobs)
            if output.finished:
                self.finish_reason = "length" if choice.finish_reason == "length" else "stop"


class VllmEngine(Engine):
    raw_media = True  # vLLM processes media itself (vllm_prompt)

    def __init__(self, model_path: str, tokenizer: Any, stop_ids: list[int], model_args: Any) -> None:
        require_package("vllm", "infer_backend: vllm", extra="gpu")
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        adapters = model_args.adapter_paths()
        if len(adapters) > 1:
            raise UserError("infer_backend: vllm serves one LoRA adapter; merge the others first with `tunelab export`.")
        extra = json.loads(model_args.vllm_config) if model_args.vllm_config else {}
        if "structured_outputs_config" in {f.name for f in dataclasses.fields(AsyncEngineArgs)}:
            extra.setdefault("structured_outputs_config", {"backend": "guidance"})  # llguidance's lark, as the hf engine
        args = AsyncEngineArgs(
            model=model_path,
            trust_remote_code=model_args.trust_remote_code,
            max_model_len=model_args.vllm_maxlen,
            gpu_memory_utilization=model_args.vllm_gpu_util,
            enforce_eager=model_args.vllm_enforce_eager,
            dtype=model_args.infer_dtype,
            enable_lora=bool(adapters),
            max_lora_rank=model_args.vllm_max_lora_rank,
            **extra,
        )
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids)
        self.max_context = model_args.vllm_maxlen
        self.lora_request = None
        if adapters:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("default", 1, adapters[0])
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True, name="tunelab-vllm").start()
        self.llm = self.submit(self._create(AsyncLLMEngine, args)).result()

    @staticmethod
    async def _create(engine_class: Any, args: Any) -> Any:
        return engine_class.from_engine_args(args)

    def describe(self) -> str:
        return "vllm" + (" + LoRA" if self.lora_request else "")

    def submit(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def iterate(self, agen: Any) -> Iterator[Any]:
        """Pull an async generator living on the engine's loop from this (synchronous) thread."""
        while True:
            try:
                yield self.submit(agen.__anext__()).result()
            except StopAsyncIteration:
                return

    def stream(self, prompt_ids: list[int], params: SamplingParams, media_inputs: PromptMedia | None = None) -> TextStream:
        return VllmTextStream(self, prompt_ids, params, media_inputs)
