"""`stage: dpo` (pref_loss sigmoid / hinge / ipo / kto_pair / orpo / simpo), and what dpo, kto and rm share.

One step: chosen and rejected sequences go through the policy in ONE forward pass (the collator
packs them padding-free, or stacks padded rows), the labelled tokens' log-probabilities are gathered
without materialising the full logits and laid out one row per sequence (`logprobs.py`), the reference log-probabilities come from whichever reference the config implies,
and a pure function of `losses.py` turns them into the loss. Which reference:

- none, for `orpo` and `simpo` (reference-free losses);
- `ref_model` (+ `ref_model_adapters`): that model, loaded frozen;
- LoRA: the policy itself with its adapter disabled (`disable_adapter()`): no second copy in memory;
- full / freeze tuning: a frozen copy of the model taken before the first step;
- `precompute_ref_log_probs: true`: the reference runs once over the data before training, its
  log-probabilities travel with the rows, and the frozen copy / reference model is then released.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch

from tunelab.errors import UserError
from tunelab.train import losses as L
from tunelab.train.base_trainer import TOKEN_COUNT_KEY, TunelabTrainer
from tunelab.train.logprobs import sequence_logps, sequence_token_logps, unwrap

logger = logging.getLogger("tunelab.train")


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


class ReferenceTrainer(MetricsTrainer):
    """MetricsTrainer with a reference policy (dpo, kto): chosen once, at construction, from the config."""

    needs_reference = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ft = self.config.finetuning
        self.ref_model: Any = None
        self.reference_kind = self._choose_reference(ft)
        if self.reference_kind == "model":
            self.ref_model = load_reference_model(self.config, self.processing_class, self.args.device)
        elif self.reference_kind == "copy" and not ft.precompute_ref_log_probs:
            self.ref_model = frozen_copy(self.model)
        logger.info("reference model: %s", REFERENCE_DESCRIPTIONS[self.reference_kind])
        self.precomputed = False
        if self.reference_kind != "none" and ft.precompute_ref_log_probs:
            self._precompute_reference()

    def _choose_reference(self, ft: Any) -> str:
        if not self.needs_reference:
            return "none"
        if ft.ref_model:
            return "model"
        if hasattr(unwrap(self.model), "disable_adapter") and ft.finetuning_type == "lora":
            return "adapter"
        return "copy"

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """The reference policy to run under no_grad: a separate model, or the policy with its adapter off."""
        with torch.no_grad():
            if self.reference_kind == "adapter":
                with unwrap(self.model).disable_adapter():
                    yield self.model
            elif self.ref_model is not None:
                yield self.ref_model
            else:  # "copy" with precompute: the policy before its first step
                yield self.model

    # -- precomputed reference log-probs -------------------------------------------------------------

    def reference_values(self, ref: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Per-row reference values a batch needs (stage-specific: dpo returns chosen / rejected)."""
        raise NotImplementedError

    def _precompute_reference(self) -> None:
        """Run the reference once over the train and eval rows; the values travel with the rows."""
        self.train_dataset = self._with_reference(self.train_dataset, "train")
        if isinstance(self.eval_dataset, dict):
            self.eval_dataset = {name: self._with_reference(d, f"eval {name}") for name, d in self.eval_dataset.items()}
        else:
            self.eval_dataset = self._with_reference(self.eval_dataset, "eval")
        self.precomputed = True
        if self.ref_model is not None:
            self.ref_model = None  # nothing needs it any more
            logger.info("precompute_ref_log_probs: reference model released")

    def _with_reference(self, dataset: Any, name: str) -> Any:
        if dataset is None:
            return None
        from torch.utils.data import DataLoader

        model = self.model
        was_training = model.training
        model.eval()
        columns: dict[str, list[float]] = defaultdict(list)
        loader = DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size, shuffle=False,
                            collate_fn=self.data_collator)
        try:
            for batch in loader:
                batch.pop(TOKEN_COUNT_KEY, None)
                batch = {k: v.to(self.args.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                with self.reference() as ref:
                    for key, values in self.reference_values(ref, batch).items():
                        columns[key].extend(float(v) for v in values.float().cpu())
        finally:
            model.train(was_training)
        logger.info("precompute_ref_log_probs: reference log-probs of %d %s rows computed", len(dataset), name)
        return with_columns(dataset, columns)


REFERENCE_DESCRIPTIONS = {
    "none": "none (reference-free loss)",
    "model": "ref_model, loaded frozen",
    "adapter": "the policy with its LoRA adapter disabled (no second copy)",
    "copy": "a frozen copy of the initial model",
}


def with_columns(dataset: Any, columns: dict[str, list[float]]) -> Any:
    """The dataset (a datasets.Dataset or a list of rows) with extra per-row columns."""
    if hasattr(dataset, "add_column"):
        for key, values in columns.items():
            if key in dataset.column_names:
                dataset = dataset.remove_columns(key)
            dataset = dataset.add_column(key, values)
        return dataset
    return [{**row, **{k: v[i] for k, v in columns.items()}} for i, row in enumerate(dataset)]


def frozen_copy(model: Any) -> Any:
    """A frozen, eval-mode copy of the model as it is now (the reference of full / freeze tuning)."""
    ref = copy.deepcopy(unwrap(model))
    ref.requires_grad_(False)
    return ref.eval()


def load_reference_model(config: Any, tokenizer: Any, device: Any) -> Any:
    """`ref_model` (+ `ref_model_adapters`, `ref_model_quantization_bit`), frozen, in the training dtype."""
    import dataclasses

    from tunelab.model.load import load_model, resolve_model_path, torch_dtype_for
    from tunelab.model.quantization import quantization_config
    from tunelab.model.tuning import apply_lora

    ft = config.finetuning
    margs = dataclasses.replace(config.model, model_name_or_path=ft.ref_model, adapter_name_or_path=ft.ref_model_adapters,
                                quantization_bit=ft.ref_model_quantization_bit)
    dtype = torch_dtype_for(config.training_values, config.model.infer_dtype)
    path = resolve_model_path(ft.ref_model)
    model = load_model(margs, tokenizer, dtype=dtype, model_path=path, for_training=False,
                       quantization_config=quantization_config(margs, dtype))
    if margs.adapter_paths():
        model = apply_lora(model, ft, margs, False)
    model.requires_grad_(False)
    if margs.quantization_bit is None:
        model = model.to(device)
    return model.eval()


class RunningMean:
    """BCO's reward shift δ: the running mean of the batch-mean rewards seen so far (the anchor's rule)."""

    def __init__(self) -> None:
        self.mean, self.count = 0.0, 0

    def update(self, value: float) -> float:
        self.count += 1
        self.mean += (value - self.mean) / self.count
        return self.mean


class PreferenceTrainer(ReferenceTrainer):
    """`stage: dpo`: the DPO family over chosen / rejected pairs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs.get("config")
        self.loss_name = config.finetuning.pref_loss if config is not None else "sigmoid"
        check_preference_config(config)
        self.bco_shift = RunningMean()
        super().__init__(*args, **kwargs)

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.loss_name not in L.REFERENCE_FREE

    def sequence_values(self, token_logps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(chosen, rejected) values the loss compares, plus the plain summed log-probs (for logging).

        Values are sums of log-probs, LD-DPO weighted with `ld_alpha` (for the policy and the reference
        alike, as in the paper's reward), and per-token averages for the length-averaged losses
        (ipo, orpo, simpo).
        """
        ft = self.config.finetuning
        sums, lengths = sequence_logps(token_logps, mask)
        half = sums.shape[0] // 2
        values = sums
        if ft.ld_alpha is not None:
            public = torch.minimum(lengths[:half], lengths[half:]).repeat(2)
            values = L.ld_logps(token_logps, mask, public, ft.ld_alpha)
        if self.loss_name in L.LENGTH_AVERAGED:
            values = values / lengths.clamp(min=1)
        return values[:half], values[half:], sums[:half], sums[half:]

    def reference_values(self, ref: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        token_logps, mask = sequence_token_logps(ref, batch)
        chosen, rejected, _, _ = self.sequence_values(token_logps, mask)
        return {"ref_chosen_logps": chosen, "ref_rejected_logps": rejected}

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        ft = self.config.finetuning
        token_logps, mask = sequence_token_logps(model, inputs)  # one pass: chosen sequences, then rejected ones
        chosen, rejected, chosen_sum, rejected_sum = self.sequence_values(token_logps, mask)
        lengths = mask.sum(-1).clamp(min=1)
        half = lengths.shape[0] // 2
        chosen_avg = chosen_sum / lengths[:half]
        parts: dict[str, Any] = {}
        if self.loss_name in L.REFERENCE_FREE:
            losses = L.preference_loss(self.loss_name, chosen, rejected, beta=ft.pref_beta, simpo_gamma=ft.simpo_gamma)
            chosen_rewards, rejected_rewards = ft.pref_beta * chosen.detach(), ft.pref_beta * rejected.detach()
            if self.loss_name == "orpo":
                parts["loss/sft"] = L.sft_loss(chosen).mean()
                parts["loss/odds_ratio"] = L.odds_ratio_loss(chosen.detach(), rejected.detach()).mean()
        else:
            ref_chosen, ref_rejected = self._reference_pair(inputs)
            chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
            losses = L.preference_loss(self.loss_name, chosen_ratio, rejected_ratio, beta=ft.pref_beta,
                                       label_smoothing=ft.dpo_label_smoothing)
            chosen_rewards, rejected_rewards = ft.pref_beta * chosen_ratio.detach(), ft.pref_beta * rejected_ratio.detach()
            if ft.pref_bco_weight > 1e-6:
                shift = torch.cat((chosen_rewards, rejected_rewards)).mean()
                delta = self.bco_shift.update(float(shift)) if model.training else self.bco_shift.mean
                bco = L.bco_pair_loss(chosen_ratio, rejected_ratio, ft.pref_beta, delta)
                parts["loss/dpo"] = losses.detach().mean()
                parts["loss/bco"] = bco.detach().mean()
                losses = (losses + ft.pref_bco_weight * bco) / (1 + ft.pref_bco_weight)
        loss = losses.mean()
        if ft.pref_ftx > 1e-6:
            sft = L.sft_loss(chosen_avg).mean()
            parts["loss/preference"] = loss.detach()
            parts["loss/sft"] = sft.detach()
            loss = loss + ft.pref_ftx * sft
        self.record(model, {
            "rewards/chosen": chosen_rewards, "rewards/rejected": rejected_rewards,
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
            "rewards/margins": chosen_rewards - rejected_rewards,
            "logps/chosen": chosen_sum.detach(), "logps/rejected": rejected_sum.detach(), **parts,
        })
        return (loss, {"chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards}) if return_outputs else loss

    def _reference_pair(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "ref_chosen_logps" in inputs:
            return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        with self.reference() as ref:
            values = self.reference_values(ref, inputs)
        return values["ref_chosen_logps"], values["ref_rejected_logps"]


def check_preference_config(config: Any) -> None:
    """Refuse contradictory preference settings with the reason (exit code 2 through UserError)."""
    if config is None:
        return
    ft = config.finetuning
    if ft.pref_loss in L.REFERENCE_FREE and (ft.ref_model or ft.ref_model_adapters):
        raise UserError(f"pref_loss: {ft.pref_loss} uses no reference model, but ref_model / ref_model_adapters "
                        "is set; drop it, or use pref_loss: sigmoid.")
    if ft.ref_model_adapters and not ft.ref_model:
        raise UserError("ref_model_adapters is set without ref_model; name the reference model it belongs to.")
    if not 0.0 <= ft.dpo_label_smoothing <= 0.5:
        raise UserError(f"dpo_label_smoothing={ft.dpo_label_smoothing}: use a value in [0, 0.5].")
    if ft.dpo_label_smoothing > 0 and ft.pref_loss != "sigmoid":
        raise UserError(f"dpo_label_smoothing only applies to pref_loss: sigmoid (it is {ft.pref_loss}).")
    if ft.ld_alpha is not None and not 0.0 <= ft.ld_alpha <= 1.0:
        raise UserError(f"ld_alpha={ft.ld_alpha}: LD-DPO weights the verbose tail by a value in [0, 1].")
    if ft.pref_beta <= 0:
        raise UserError(f"pref_beta={ft.pref_beta}: use a positive value.")
