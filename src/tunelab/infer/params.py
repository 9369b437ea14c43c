"""Sampling settings of one generation, and the rule that picks their defaults.

Precedence, lowest first: tunelab's `GeneratingArguments` defaults, then the model's own
`generation_config.json` (its authors tuned it), then the keys the user wrote in the config
(`Config.explicit`), then what one request asks for (API fields, webchat sliders). A key the user
did not write never overrides the model's file, which is the anchor's documented behaviour.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config.generating_args import GENERATION_KEYS

if TYPE_CHECKING:
    from tunelab.infer.structured import Constraint

logger = logging.getLogger("tunelab.infer")


@dataclass(frozen=True)
class SamplingParams:
    """Everything an engine needs to know about how to generate, besides the prompt."""

    do_sample: bool = True
    temperature: float = 0.95
    top_p: float = 0.7
    top_k: int = 50
    num_beams: int = 1
    max_new_tokens: int | None = 1024
    max_length: int | None = None  # only used when the user set max_length and not max_new_tokens
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    skip_special_tokens: bool = True
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # OpenAI's per-request controls; the defaults ask for nothing (infer/logits_processors.py acts on them)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias in -100..100)
    logprobs: int | None = None  # None: not asked; k >= 0: the chosen token's log-prob and k alternatives
    constraint: Constraint | None = None  # structured output (response_format, tool_choice)

    def with_overrides(self, **values: Any) -> SamplingParams:
        """A copy with the given non-None values; temperature 0 means greedy, a positive one sampling (OpenAI)."""
        known = {f.name for f in fields(self)}
        changes = {k: v for k, v in values.items() if v is not None and k in known}
        if "stop" in changes:
            stop = changes["stop"]
            changes["stop"] = (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)
        if "temperature" in changes and "do_sample" not in changes:
            changes["do_sample"] = changes["temperature"] > 0
        return replace(self, **changes)

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


def model_generation_defaults(model_path: str, loaded_generation_config: Any = None) -> dict[str, Any]:
    """The sampling keys the model's authors wrote in `generation_config.json` (only those).

    Reading the file, not `GenerationConfig`'s attributes, matters: the attributes also hold
    transformers' own defaults (temperature 1.0, max_length 20), which nobody chose for this model.
    """
    path = Path(model_path) / "generation_config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
    elif loaded_generation_config is not None:
        data = loaded_generation_config.to_diff_dict()
    else:
        data = {}
    return {key: data[key] for key in GENERATION_KEYS if data.get(key) is not None}


def default_params(generating: Any, explicit: dict[str, Any], model_defaults: dict[str, Any]) -> SamplingParams:
    """Resolve the defaults of every request (see the module docstring for the order)."""
    values: dict[str, Any] = {key: getattr(generating, key) for key in GENERATION_KEYS}
    values["skip_special_tokens"] = generating.skip_special_tokens
    from_model = {k: v for k, v in model_defaults.items() if k not in explicit}
    values.update(from_model)
    if "max_length" in explicit and "max_new_tokens" not in explicit and "max_new_tokens" not in from_model:
        values["max_new_tokens"] = None
        values["max_length"] = int(explicit["max_length"])
    if from_model:
        logger.info("generation defaults from the model's generation_config.json: %s",
                    ", ".join(f"{k}={v!r}" for k, v in sorted(from_model.items())))
    return SamplingParams(**values)
