"""`stage: dpo`: the DPO family over chosen / rejected pairs (pref_loss sigmoid, hinge, ipo, kto_pair, orpo, simpo).

One step: chosen and rejected sequences go through the policy in ONE forward pass (the collator
packs them padding-free, or stacks padded rows), the labelled tokens' log-probabilities are gathered
without materialising the full logits and laid out one row per sequence (`losses/logprobs.py`), the
reference log-probabilities come from whichever reference the config implies (`trainers/reference.py`),
and a pure function of `losses/preference.py` turns them into the loss.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from tunelab.config.resolved import Config
from tunelab.train.collators import PairCollator, pair_layout
from tunelab.train.data_prep import PreparedData
from tunelab.train.losses import preference as L
from tunelab.train.losses.logprobs import sequence_logps, sequence_token_logps
from tunelab.train.trainers.metrics import sequence_count
from tunelab.train.trainers.reference import ReferenceTrainer, check_preference_config

logger = logging.getLogger("tunelab.train")

NAMES = ("dpo",)  # the stage-table rows this room serves


def check_config(config: Config) -> None:
    """dpo's refusals, run before any weights load."""
    check_preference_config(config)


def make_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config) -> PairCollator:
    """Chosen then rejected sequences in one batch, padding-free unless `padding_free: false`."""
    return PairCollator(**pair_layout(tokenizer, model, config))


class RunningMean:
    """BCO's reward shift δ: the running mean of the batch-mean rewards seen so far (the anchor's rule), one
    update per optimizer step with the mean over its whole batch (the anchor's per-batch update without
    accumulation)."""

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
        self.step_bco_shift = 0.0
        self.step_kto_pair = torch.zeros(4)
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

    def step_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"pairs": sequence_count(batch) // 2}  # every loss is a mean over pairs

    def prepare_step(self, batches: list[dict[str, Any]]) -> None:
        """The statistics of the whole step (every micro-batch, every process) two losses need, from one pass
        of the policy without gradient; the reference values computed for them travel with the micro-batches.

        - `pref_loss: kto_pair`: its KL reference points are means over the step's pairs
          (`losses.preference.kto_pair_step_points`);
        - `pref_bco_weight`: BCO's reward shift δ is updated once, with the mean reward of the step's pairs.
        """
        ft = self.config.finetuning
        bco = ft.pref_bco_weight > 1e-6 and self.loss_name not in L.REFERENCE_FREE
        if not bco and self.loss_name != "kto_pair":
            return
        chosen_ratios, rejected_ratios = [], []
        with torch.no_grad():
            for batch in batches:
                if "ref_chosen_logps" not in batch:
                    with self.reference() as ref:
                        batch.update(self.reference_values(ref, batch))
                chosen, rejected, _, _ = self.sequence_values(*sequence_token_logps(self.model, batch))
                chosen_ratios.append(chosen - batch["ref_chosen_logps"])
                rejected_ratios.append(rejected - batch["ref_rejected_logps"])
        reduce = None
        if self.accelerator.num_processes > 1:
            def reduce(t: torch.Tensor) -> torch.Tensor:
                return self.accelerator.reduce(t, reduction="sum")
        if self.loss_name == "kto_pair":
            self.step_kto_pair = L.kto_pair_step_points(chosen_ratios, rejected_ratios, ft.pref_beta, reduce)
        if bco:
            ratios = torch.cat(chosen_ratios + rejected_ratios).double()
            summed = torch.stack((ft.pref_beta * ratios.sum(), torch.tensor(float(ratios.numel()), dtype=torch.float64,
                                                                             device=ratios.device)))
            summed = reduce(summed) if reduce is not None else summed
            self.step_bco_shift = self.bco_shift.update(float(summed[0] / summed[1].clamp(min=1)))

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
                parts["loss/sft"] = L.sft_loss(chosen.detach())
                parts["loss/odds_ratio"] = L.odds_ratio_loss(chosen.detach(), rejected.detach())
        else:
            ref_chosen, ref_rejected = self._reference_pair(inputs)
            chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
            if self.loss_name == "kto_pair" and num_items_in_batch is not None:  # the step's reference points
                losses = L.kto_pair_step_loss(chosen_ratio, rejected_ratio, ft.pref_beta, self.step_kto_pair)
            else:
                losses = L.preference_loss(self.loss_name, chosen_ratio, rejected_ratio, beta=ft.pref_beta,
                                           label_smoothing=ft.dpo_label_smoothing)
            chosen_rewards, rejected_rewards = ft.pref_beta * chosen_ratio.detach(), ft.pref_beta * rejected_ratio.detach()
            if ft.pref_bco_weight > 1e-6:
                delta = self.step_bco_shift if model.training else self.bco_shift.mean  # see prepare_step
                bco = L.bco_pair_loss(chosen_ratio, rejected_ratio, ft.pref_beta, delta)
                parts["loss/dpo"] = losses.detach()
                parts["loss/bco"] = bco.detach()
                losses = (losses + ft.pref_bco_weight * bco) / (1 + ft.pref_bco_weight)
        total = losses.sum() * half / losses.numel()  # summed over pairs (kto_pair has two losses per pair)
        if ft.pref_ftx > 1e-6:
            sft = L.sft_loss(chosen_avg)
            parts["loss/preference"] = losses.detach()
            parts["loss/sft"] = sft.detach()
            total = total + ft.pref_ftx * sft.sum()
        loss = self.step_share(total, "pairs", num_items_in_batch, half)  # the mean over the step's pairs
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


Trainer = PreferenceTrainer
