"""From a parsed config to a ready `ChatModel`: tokenizer, template, backend, adapters, defaults.

This is the one place where `infer_backend`, `infer_dtype`, `adapter_name_or_path`, `template`,
`default_system`, `enable_thinking` and the generating keys act for `chat`, `webchat` and `api`; and
where a multimodal model gets its processor (`load_media_encoding`, with the media keys
`image_max_pixels` ...), so chats read pictures as training did.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config
from tunelab.config.stages import get_stage_spec
from tunelab.data.encode import stop_token_ids
from tunelab.data.templates import get_template
from tunelab.data.templates.drift import warn_on_drift
from tunelab.errors import UserError
from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import Engine
from tunelab.infer.params import default_params, model_generation_defaults

logger = logging.getLogger("tunelab.infer")


def inference_dtype(infer_dtype: str) -> Any:
    """`infer_dtype`, or for `auto`: bfloat16 (float16 on older GPUs) on CUDA, float32 on CPU.

    The training keys bf16 / fp16 of a reused training YAML do not apply: half precision on a CPU is
    slow or unsupported, and inference dtype has its own key."""
    import torch

    if infer_dtype != "auto":
        return getattr(torch, infer_dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _hint_trained_adapter(config: Config) -> None:
    """A training YAML reused for chat (seed 000) names its output_dir, not the adapter: say so once."""
    output_dir = config.training_values.get("output_dir")
    if output_dir and not config.model.adapter_name_or_path and (Path(output_dir) / "adapter_config.json").is_file():
        logger.warning(
            "%s holds a trained adapter, but adapter_name_or_path is not set, so the base model alone answers. "
            "Add adapter_name_or_path: %s to chat with the fine-tuned model.", output_dir, output_dir,
        )


def _load_hf(config: Config, path: str, tokenizer: Any, stop_ids: list[int]) -> tuple[Engine, Any, Any]:
    import torch

    from tunelab.infer.hf_engine import HfEngine
    from tunelab.model.load import load_model
    from tunelab.model.quantization import quantization_config
    from tunelab.model.tuning import apply_tuning

    dtype = inference_dtype(config.model.infer_dtype)
    model = load_model(config.model, tokenizer, dtype=dtype, model_path=path, for_training=False,
                       quantization_config=quantization_config(config.model, dtype))
    if config.model.adapter_paths():
        model = apply_tuning(model, config.finetuning, config.model, is_trainable=False)
    if torch.cuda.is_available() and config.model.quantization_bit is None:
        model = model.to("cuda")
    scorer = None
    if get_stage_spec(config.finetuning.stage).scores:
        from tunelab.infer.scoring import RewardScorer
        from tunelab.model.value_head import find_value_head

        head = find_value_head([*reversed(config.model.adapter_paths()), path])
        if head is None:
            raise UserError("stage: rm, but no value_head.safetensors was found in the adapter or model folder; "
                            "a sequence-classification reward model is loaded with stage: rm and no adapter.")
        scorer = RewardScorer.from_value_head(model, tokenizer, head)
    engine = HfEngine(model, tokenizer, stop_ids)
    return engine, model.generation_config, scorer


def _load_sequence_classifier(config: Config, path: str, tokenizer: Any) -> Any:
    from transformers import AutoModelForSequenceClassification

    from tunelab.infer.scoring import RewardScorer

    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=inference_dtype(config.model.infer_dtype), trust_remote_code=config.model.trust_remote_code
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    logger.info("reward model: sequence classification head of %s", path)
    return RewardScorer(model, tokenizer)


def load_chat_model(config: Config, *, name: str | None = None) -> ChatModel:
    """Load what the config names; the returned model answers chats (and scores, for stage: rm)."""
    from tunelab.model.load import load_tokenizer, resolve_model_path

    margs = config.model
    if margs.infer_backend == "sglang":
        raise UserError("infer_backend: sglang is not supported by tunelab; use huggingface (default) or vllm.")
    _hint_trained_adapter(config)
    path = resolve_model_path(margs.model_name_or_path)
    tokenizer = load_tokenizer(margs, model_path=path)
    data = config.data
    template = get_template(data.template, tokenizer, tool_format=data.tool_format, default_system=data.default_system)
    warn_on_drift(template, tokenizer, data, where="inference", model=margs.model_name_or_path)
    stop_ids = stop_token_ids(tokenizer, template)
    from tunelab.model.processor import load_media_encoding

    media = load_media_encoding(margs, path, tokenizer)
    engine: Engine
    scorer = None
    if get_stage_spec(config.finetuning.stage).scores and not margs.adapter_paths() and not (Path(path) / "value_head.safetensors").is_file():
        scorer = _load_sequence_classifier(config, path, tokenizer)
        engine = _NoGeneration(tokenizer)
        loaded_config = None
    elif margs.infer_backend == "vllm":
        from tunelab.infer.vllm_engine import VllmEngine

        engine, loaded_config = VllmEngine(path, tokenizer, stop_ids, margs), None
    else:
        engine, loaded_config, scorer = _load_hf(config, path, tokenizer, stop_ids)
    defaults = default_params(config.generating, config.explicit, model_generation_defaults(path, loaded_config))
    logger.info("inference: %s, template %s, stop ids %s", engine.describe(), template.name, stop_ids)
    thinking = data.enable_thinking is not False
    model_name = name or Path(margs.model_name_or_path or "model").name
    return ChatModel(engine, template, defaults, name=model_name, enable_thinking=thinking, scorer=scorer, media=media)


class _NoGeneration(Engine):
    """Stands in for a generating engine when the model only scores (a sequence classifier)."""

    max_context = None

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = []

    def stream(self, prompt_ids: list[int], params: Any, media_inputs: Any = None) -> Any:
        raise UserError("this model is a reward model (stage: rm): it scores texts (/v1/score/evaluation) and cannot chat.")

    def describe(self) -> str:
        return "reward model (scoring only)"
