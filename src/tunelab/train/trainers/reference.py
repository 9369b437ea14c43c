"""The reference policy of dpo, kto, ppo and grpo: which one a run uses, and the checks they share.

Which reference:

- none, for reference-free losses (`orpo`, `simpo`);
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

from tunelab.config.finetuning_args import FinetuningArguments
from tunelab.config.resolved import Config
from tunelab.data.batching import TOKEN_COUNT_KEY
from tunelab.errors import UserError
from tunelab.train.losses import preference as L
from tunelab.train.losses.logprobs import unwrap
from tunelab.train.trainers.metrics import MetricsTrainer

logger = logging.getLogger("tunelab.train")


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

    def _choose_reference(self, ft: FinetuningArguments) -> str:
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


def load_reference_model(config: Config, tokenizer: Any, device: Any) -> Any:
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


def check_preference_config(config: Config | None) -> None:
    """The preference checks dpo and kto share: contradictory settings refused with the reason (exit code 2)."""
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
