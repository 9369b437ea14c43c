"""`stage: pt` and `stage: sft`: the language-modelling stages, their collators and their trainer.

The loss is the stock next-token loss, computed by the fused linear + cross-entropy of
`losses/lm.py` so the full logits tensor is never built.

The value and its normalisation are exactly the stock ones: the summed token loss divided by
`num_items_in_batch` (the labelled-token count of the whole accumulated batch, across processes when
`average_tokens_across_devices`), or by this batch's token count when the Trainer gives none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from tunelab.config.resolved import Config
from tunelab.data.batching import (
    TOKEN_COUNT_KEY,
    pack_batch,
    packed_batch,
    pad_right,
    split_packed_rows,
    uses_varlen_attention,
)
from tunelab.data.labels import IGNORE_INDEX
from tunelab.model.packing_isolation import packing_isolation
from tunelab.train.data_prep import PreparedData
from tunelab.train.losses.lm import summed_lm_loss
from tunelab.train.losses.logprobs import forward_hidden, unwrap
from tunelab.train.trainers.base import TunelabTrainer

logger = logging.getLogger("tunelab.train")

NAMES = ("pt", "sft")  # the stage-table rows this room serves


def check_config(config: Config) -> None:
    """pt and sft have no keys of their own to check beyond what config/validate.py checks."""


@dataclass
class PaddingCollator:
    """Right-pads input_ids with the pad token and labels with -100 (`padding_free: false`, no packing)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [(f["input_ids"], f.get("labels", f["input_ids"])) for f in features]
        batch = pad_right(rows, self.pad_token_id, self.pad_to_multiple_of)
        batch[TOKEN_COUNT_KEY] = batch["attention_mask"].sum()
        return batch


@dataclass
class PackedCollator:
    """Rows packed ahead by `packing` (`segment_lengths`): see `data/batching.packed_batch`. With
    `isolates: False` (a model that would let one example see another, `model/packing_isolation.py`)
    each row's examples are split apart again and padded into rows of their own."""

    pad_token_id: int
    isolates: bool = True

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.isolates:
            return PaddingCollator(self.pad_token_id)(split_packed_rows(features))
        return packed_batch(features, self.pad_token_id)


@dataclass
class PaddingFreeCollator:
    """The batch's own examples packed into as few rows as they fit: no padding, no attention across
    examples, and the same examples per optimizer step as padded batching (unlike `packing`).
    See `data/batching.pack_batch` for the row sizes."""

    pad_token_id: int
    varlen_attention: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [{"input_ids": f["input_ids"], "labels": f.get("labels", f["input_ids"])} for f in features]
        return pack_batch(rows, self.pad_token_id, self.varlen_attention)[0]


def make_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config | None) -> Any:
    """Packed rows, padding-free batches or padded rows, as `packing` / `padding_free` say and as far as
    the model keeps packed examples apart (`model/packing_isolation.py`); a multimodal model's batches
    also carry their media (`train/media_collator.py`)."""
    if getattr(prepared, "media", None) is not None:  # PreparedData.media; other callers pass only the text fields
        return _media_collator(prepared, tokenizer, model, config)
    packs = prepared.packed or bool(config is not None and config.data.padding_free)
    isolates = packing_isolation(model).isolates if packs else True
    if prepared.packed:
        return PackedCollator(pad_token_id=tokenizer.pad_token_id, isolates=isolates)
    if packs and isolates:
        return PaddingFreeCollator(pad_token_id=tokenizer.pad_token_id, varlen_attention=uses_varlen_attention(model))
    return PaddingCollator(pad_token_id=tokenizer.pad_token_id)


def _media_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config | None) -> Any:
    """Padding-free when asked and the family's positions allow it (Qwen-VL), padded otherwise; logged."""
    from tunelab.model.multimodal_tuning import multimodal_family_of
    from tunelab.train.media_collator import MediaCollator, MediaPaddingFreeCollator, rope_index_of

    family = multimodal_family_of(unwrap(model))
    wanted = bool(config is not None and config.data.padding_free)
    rope_index = rope_index_of(model) if family is not None and family.padding_free else None
    if wanted and rope_index is not None:
        logger.info("%s: padding-free batches (each example's 3-D rotary positions computed apart)", family.name)
        return MediaPaddingFreeCollator(tokenizer.pad_token_id, prepared.media, rope_index,
                                        varlen_attention=uses_varlen_attention(model))
    if wanted:
        logger.info("%s: padded batches (padding_free needs per-example positions this family's model does not "
                    "take)", family.name if family else "multimodal model")
    return MediaCollator(PaddingCollator(pad_token_id=tokenizer.pad_token_id), prepared.media)


class CausalLMTrainer(TunelabTrainer):
    """TunelabTrainer whose training loss never materialises [tokens, vocab] logits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.use_liger_loss = bool(self.config is not None and self.config.model.enable_liger_kernel)
        self.stock_loss_reason = why = self._stock_loss_reason()  # fixed for the run: decided once
        if why:
            logger.info("loss: the stock cross-entropy on full logits (%s)", why)
        else:
            kernel = "liger-kernel's Triton kernel" if self.use_liger_loss else "chunked PyTorch"
            logger.info("loss: fused linear + cross-entropy (%s); full logits are never built", kernel)

    def _stock_loss_reason(self) -> str | None:
        """Why the fused loss cannot be used for this run (None when it can)."""
        if self.label_smoother is not None:
            return "label_smoothing_factor is set"
        if self.compute_loss_func is not None:
            return "a custom compute_loss_func is set"
        if self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3:
            return "DeepSpeed ZeRO-3 shards the output head outside its forward pass"
        if self.is_fsdp_enabled:
            return "FSDP shards the output head outside its forward pass"
        if unwrap(self.model).get_output_embeddings() is None:
            return "the model has no output head"
        return None

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if return_outputs or not model.training or self.stock_loss_reason:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        labels = inputs["labels"]
        inner = unwrap(model)
        hidden = forward_hidden(model, inputs)
        total = summed_lm_loss(hidden, labels, inner.get_output_embeddings(), inner.config,
                               use_liger=self.use_liger_loss)
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size()
                               if self.args.n_gpu <= 1 else self.args.n_gpu)
        else:
            loss = total / (labels[:, 1:] != IGNORE_INDEX).sum().clamp(min=1)
        return loss.to(torch.float32)


Trainer = CausalLMTrainer
