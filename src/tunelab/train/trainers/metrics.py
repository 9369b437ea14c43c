"""The Trainer of the stages that compute their loss themselves (rm, dpo, kto, ppo, grpo), and the
metrics they log besides the loss (rewards, accuracies, margins, KL).

The values are recorded at each loss computation and averaged into the next `log` call, so they land
in trainer_log.jsonl, TensorBoard and eval_results.json (as `eval_<name>`) like the loss does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from tunelab.data.batching import TOKEN_COUNT_KEY
from tunelab.train.trainers.base import TunelabTrainer


class StepMetrics:
    """Values recorded at each loss computation, averaged into the next `log` call (train or eval)."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def add(self, mode: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is None:
                continue
            number = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
            self._values[mode][key].append(number)

    def pop_means(self, mode: str) -> dict[str, float]:
        means = {k: round(sum(v) / len(v), 6) for k, v in self._values[mode].items() if v}
        self._values[mode].clear()
        return means


class MetricsTrainer(TunelabTrainer):
    """TunelabTrainer whose loss is computed here (not by the model) and whose metrics reach the logs.

    The metrics land in the Trainer's `log` calls, hence in trainer_log.jsonl, TensorBoard and
    eval_results.json (as `eval_<name>`).
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean; the Trainer divides by GA steps

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_metrics = StepMetrics()

    def record(self, model: Any, values: dict[str, Any]) -> None:
        self.step_metrics.add("train" if model.training else "eval", values)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        evaluating = any(key.startswith("eval_") for key in logs)
        means = self.step_metrics.pop_means("eval" if evaluating else "train")
        logs.update({(f"eval_{k}" if evaluating else k): v for k, v in means.items()})  # in place: evaluate() returns it
        super().log(logs, start_time)

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None, **kwargs: Any) -> Any:
        inputs.pop(TOKEN_COUNT_KEY, None)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
