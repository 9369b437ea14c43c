"""The Trainer of the stages that compute their loss themselves (rm, dpo, kto, ppo, grpo): how their loss
is averaged over the accumulated batch, and the metrics they log besides the loss (rewards, accuracies,
margins, KL).

Averaging: one optimizer step sees `per_device_train_batch_size × gradient_accumulation_steps ×
processes` examples, and its loss is the mean over all of them, whatever the split. Before the first
micro-batch of a step, `get_batch_samples` counts what the stage's loss averages over (pairs,
examples, completions, tokens: `step_counts`) in every micro-batch of the step, summed over the
processes; each micro-batch then returns its summed loss divided by that count (`step_share`), times
the number of processes because DDP averages their gradients. So batch 8 × accumulation 1, batch 2 ×
accumulation 4 and 2 processes × batch 2 × accumulation 2 give the same loss and the same gradient,
also when the micro-batches differ in size (the last one of an epoch). A stage whose loss needs a
statistic of the whole step (kto's KL reference point, ppo's whitened advantages) computes it in
`prepare_step`, which sees every micro-batch of the step first.

Metrics: recorded at each loss computation as sums and counts, combined over the processes and
averaged into the next `log` call, so they land in trainer_log.jsonl, TensorBoard and
eval_results.json (as `eval_<name>`) like the loss does, with the values one process would log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch

from tunelab.data.batching import SEQUENCE_INDEX_KEY, TOKEN_COUNT_KEY
from tunelab.train.trainers.base import TunelabTrainer


class StepMetrics:
    """Values recorded at each loss computation, averaged into the next `log` call (train or eval).

    A tensor counts each of its elements once, so a mean over several micro-batches (or processes) is
    the mean over all their examples, as one batch holding them all would give.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[str, list[float]]] = {"train": defaultdict(lambda: [0.0, 0]),
                                                           "eval": defaultdict(lambda: [0.0, 0])}

    def add(self, mode: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, torch.Tensor):
                value = value.detach().float()
                total, count = float(value.sum()), value.numel()
            else:
                total, count = float(value), 1
            if count:
                slot = self._values[mode][key]
                slot[0] += total
                slot[1] += count

    def pop_sums(self, mode: str) -> dict[str, tuple[float, int]]:
        sums = {k: (v[0], v[1]) for k, v in self._values[mode].items() if v[1]}
        self._values[mode].clear()
        return sums

    def pop_means(self, mode: str) -> dict[str, float]:
        return means_of([self.pop_sums(mode)])


def means_of(parts: list[dict[str, tuple[float, int]]]) -> dict[str, float]:
    """The means of (sum, count) records from several processes, key by key."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for part in parts:
        for key, (total, count) in part.items():
            totals[key][0] += total
            totals[key][1] += count
    return {k: round(total / count, 6) for k, (total, count) in totals.items() if count}


def sequence_count(batch: dict[str, Any]) -> int:
    """How many sequences a padded (one row each) or padding-free (`sequence_index`) batch holds."""
    if SEQUENCE_INDEX_KEY in batch:
        return int(batch[SEQUENCE_INDEX_KEY].max()) + 1
    return int(batch["input_ids"].shape[0])


class MetricsTrainer(TunelabTrainer):
    """TunelabTrainer whose loss is computed here (not by the model), averaged over the whole accumulated
    batch (see the module docstring), and whose metrics reach the logs."""

    loss_is_scaled_for_ga = True  # compute_loss returns its micro-batch's share of the step's mean (step_share)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_metrics = StepMetrics()

    # -- the accumulated batch ---------------------------------------------------------------------------

    def step_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        """What the stage's loss averages over, counted in one micro-batch (e.g. {"pairs": 4})."""
        raise NotImplementedError

    def prepare_step(self, batches: list[dict[str, Any]]) -> None:
        """Work that needs every micro-batch of an optimizer step before the first of them (nothing by default)."""

    def get_batch_samples(self, epoch_iterator: Iterator[Any], num_batches: int, device: Any) -> tuple[list, Any]:
        """The micro-batches of one optimizer step and, as `num_items_in_batch`, their counts summed over
        the step and the processes (a dict, see `step_counts`)."""
        batches = []
        for _ in range(num_batches):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        if not batches:
            return batches, None
        self.model.train()  # as training_step sets it (before the first step the model may still be in eval mode)
        self.prepare_step(batches)
        totals: dict[str, float] = defaultdict(float)
        for batch in batches:
            for key, value in self.step_counts(batch).items():
                totals[key] += float(value)
        keys = sorted(totals)
        summed = torch.tensor([totals[k] for k in keys], dtype=torch.float64, device=device)
        if self.accelerator.num_processes > 1:
            summed = self.accelerator.reduce(summed, reduction="sum")
        return batches, dict(zip(keys, summed.float(), strict=True))

    def step_share(self, total: torch.Tensor, count: str, num_items_in_batch: Any, local_count: Any) -> torch.Tensor:
        """This micro-batch's summed loss `total` as its share of the step's mean over `count`.

        In training (`num_items_in_batch` from `get_batch_samples`): total × processes / the step's count,
        so the shares of all micro-batches add up, after DDP's gradient average, to the mean over the
        whole step. Elsewhere (evaluation): total / `local_count`, this batch's own mean.
        """
        if num_items_in_batch is None:
            return total / max(float(local_count), 1.0)
        return total * self.accelerator.num_processes / num_items_in_batch[count].clamp(min=1)

    # -- metrics -----------------------------------------------------------------------------------------

    def record(self, model: Any, values: dict[str, Any]) -> None:
        self.step_metrics.add("train" if model.training else "eval", values)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        evaluating = any(key.startswith("eval_") for key in logs)
        sums = self.step_metrics.pop_sums("eval" if evaluating else "train")
        if self.args.world_size > 1:  # every process logs at the same steps; each recorded its own batches
            from accelerate.utils import gather_object

            parts = gather_object([sums])
        else:
            parts = [sums]
        means = means_of(parts)
        logs.update({(f"eval_{k}" if evaluating else k): v for k, v in means.items()})  # in place: evaluate() returns it
        super().log(logs, start_time)

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None, **kwargs: Any) -> Any:
        inputs.pop(TOKEN_COUNT_KEY, None)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
