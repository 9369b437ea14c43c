"""The trainer of the language-modelling stages (pt, sft): the stock next-token loss, computed by the
fused linear + cross-entropy of `fused_loss` so the full logits tensor is never built.

The value and its normalisation are exactly the stock ones: the summed token loss divided by
`num_items_in_batch` (the labelled-token count of the whole accumulated batch, across processes when
`average_tokens_across_devices`), or by this batch's token count when the Trainer gives none.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from tunelab.train.base_trainer import TunelabTrainer
from tunelab.train.fused_loss import summed_lm_loss
from tunelab.train.logprobs import forward_hidden, unwrap

logger = logging.getLogger("tunelab.train")


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
            loss = total / (labels[:, 1:] != -100).sum().clamp(min=1)
        return loss.to(torch.float32)
