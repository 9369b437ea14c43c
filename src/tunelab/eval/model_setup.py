"""The model an evaluation runs on: base weights, the adapters the config names, its chat template.

Shared by the benchmark and the generation paths so both read `model_name_or_path`,
`adapter_name_or_path`, `template` and `infer_dtype` exactly as `tunelab train` and `tunelab chat` do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tunelab.config.resolved import Config

logger = logging.getLogger("tunelab.eval")


@dataclass
class EvalModel:
    """What an evaluation needs from a loaded model."""

    model: Any
    tokenizer: Any
    template: Any
    model_path: str


def load_tokenizer_and_template(config: Config) -> tuple[Any, Any, str]:
    """Tokenizer and template only: enough to build prompts (and to fail early on a bad template)."""
    from tunelab.data.templates import get_template
    from tunelab.eval.fewshot_template import FewshotTemplate, wants_builtin_fewshot
    from tunelab.model.load import load_tokenizer, resolve_model_path

    path = resolve_model_path(config.model.model_name_or_path)
    tokenizer = load_tokenizer(config.model, path)
    if wants_builtin_fewshot(config.data.template):
        return tokenizer, FewshotTemplate(), path
    template = get_template(config.data.template, tokenizer, tool_format=config.data.tool_format,
                            default_system=config.data.default_system)
    return tokenizer, template, path


def load_eval_model(config: Config) -> EvalModel:
    """Base model plus adapters, frozen, in eval mode, on the GPU when there is one."""
    import torch

    from tunelab.model.load import load_model, torch_dtype_for
    from tunelab.model.tuning import apply_tuning

    tokenizer, template, path = load_tokenizer_and_template(config)
    dtype = torch_dtype_for(config.training_values, config.model.infer_dtype)
    model = load_model(config.model, tokenizer, dtype=dtype, model_path=path, for_training=False)
    model = apply_tuning(model, config.finetuning, config.model, is_trainable=False)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    logger.info("evaluating %s%s", path,
                f" with adapter(s) {config.model.adapter_name_or_path}" if config.model.adapter_name_or_path else "")
    return EvalModel(model, tokenizer, template, path)
