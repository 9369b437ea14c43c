"""Guards that stop a long run from going wrong silently: non-finite steps and out-of-memory."""

from __future__ import annotations

import logging
import re
from typing import Any

from transformers import TrainerCallback

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")

NONFINITE_CAUSES = (
    "a learning rate that is too high (lower learning_rate or add warmup_steps), fp16 overflow (use bf16 on "
    "GPUs that support it), or an example with no trained tokens or corrupt text (run `tunelab data check`)"
)


def _grads_are_finite(model: Any) -> bool:
    import torch

    flags = [torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None]
    if not flags:
        return True
    finite = torch.stack(flags).all()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        flag = finite.to(torch.float32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)  # every rank skips together
        return bool(flag.item())
    return bool(finite.item())


class NonFiniteGuard(TrainerCallback):
    """Skips an optimizer step whose gradients are not finite, and stops after too many.

    The gradients are dropped (set to None), so the optimizer leaves every weight and its moments
    untouched for that step: the step is skipped, not taken with zeros.
    """

    def __init__(self, max_nonfinite_steps: int) -> None:
        self.max_nonfinite_steps = max_nonfinite_steps
        self.skipped: list[int] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None or _grads_are_finite(model):
            return
        step = state.global_step + 1
        self.skipped.append(step)
        for param in model.parameters():
            param.grad = None
        if len(self.skipped) > self.max_nonfinite_steps:
            raise UserError(
                f"step {step}: the loss or gradient is not finite (NaN or inf), for the {len(self.skipped)}th time "
                f"(steps {', '.join(map(str, self.skipped[-5:]))}); stopping, as max_nonfinite_steps="
                f"{self.max_nonfinite_steps}. Likely causes: {NONFINITE_CAUSES}."
            )
        logger.warning("step %d: non-finite loss or gradient; the step is skipped (%d of at most %d)",
                       step, len(self.skipped), self.max_nonfinite_steps)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if logs is not None and self.skipped:
            logs["nonfinite_steps_skipped"] = len(self.skipped)


MEMORY_OPTIONS = (
    "activation_checkpointing: true (recompute activations; ~20-30% slower, large saving)",
    "a smaller per_device_train_batch_size with a larger gradient_accumulation_steps (same effective batch)",
    "a smaller cutoff_len",
    "finetuning_type: lora instead of full or freeze",
    "quantization_bit: 4 (QLoRA)",
    "deepspeed with ZeRO-3 and CPU offload (examples/deepspeed/)",
)


def out_of_memory_error(error: BaseException) -> UserError:
    """An out-of-memory error with the figures and the options that cut memory, cheapest first."""
    import torch

    requested = re.search(r"Tried to allocate ([\d.]+ [KMGT]?i?B)", str(error))
    figures = [f"requested {requested.group(1)}" if requested else "requested: unknown"]
    if torch.cuda.is_available():
        device = torch.cuda.current_device()
        total = torch.cuda.get_device_properties(device).total_memory / 2**30
        figures += [f"allocated {torch.cuda.memory_allocated(device) / 2**30:.2f} GiB",
                    f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB", f"device total {total:.2f} GiB"]
    options = "\n".join(f"  {i}. {option}" for i, option in enumerate(MEMORY_OPTIONS, 1))
    return UserError(f"out of memory ({', '.join(figures)}). Options that cut memory, in order of cost:\n{options}")
