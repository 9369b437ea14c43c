"""The checks ppo and grpo share (both sample completions during training), run before weights load."""

from __future__ import annotations

import logging

from tunelab.config.resolved import Config
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")


def check_rl_common(config: Config) -> None:
    """Checks ppo and grpo share, before weights load."""
    ft, gen = config.finetuning, config.generating
    stage = ft.stage
    if ft.precompute_ref_log_probs:
        raise UserError(f"precompute_ref_log_probs does not apply to stage: {stage} (its completions are sampled "
                        "during training); remove it.")
    if ft.ref_model_adapters and not ft.ref_model:
        raise UserError("ref_model_adapters is set without ref_model; set ref_model too, or remove ref_model_adapters.")
    if ft.max_completion_length is not None and ft.max_completion_length < 1:
        raise UserError(f"max_completion_length must be at least 1 (got {ft.max_completion_length}).")
    if ft.reward_model_type == "api" and ft.reward_model and not str(ft.reward_model).startswith(("http://", "https://")):
        raise UserError(f"reward_model_type: api needs reward_model to be a URL (http://host:port), "
                        f"got {ft.reward_model!r}.")
    if ft.reward_model_adapters and ft.reward_model_type != "full":
        raise UserError("reward_model_adapters applies to reward_model_type: full; with lora, reward_model itself is "
                        "the reward adapter.")
    if gen.do_sample and gen.temperature <= 0:
        raise UserError(f"stage: {stage} samples completions: temperature must be > 0 (got {gen.temperature}).")
    if config.model.infer_backend != "huggingface":
        logger.warning("stage: %s generates with the huggingface engine (infer_backend: %s is not used for training "
                       "rollouts yet)", stage, config.model.infer_backend)
