"""`stage: kto`: Kahneman-Tversky optimisation on examples labelled desirable or undesirable (`kto_tag`).

Each batch holds the examples and, from the collator, their mismatched rows (x_i, y_{i-1}); the
policy-vs-reference KL on those rows is KTO's reference point z₀ (Ethayarajh et al. 2024, sec. 4.1).
The policy scores the examples with gradients and the mismatched rows without (z₀ is detached
anyway); the reference scores both without gradients (one pass over a padded batch; two over a
padding-free one, whose examples and mismatched sequences are packed apart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from tunelab.config.resolved import Config
from tunelab.data.batching import SEQUENCE_INDEX_KEY, TOKEN_COUNT_KEY, pack_sequences, pad_right
from tunelab.data.labels import IGNORE_INDEX
from tunelab.errors import UserError
from tunelab.train.collators import add_reference_values, pair_layout
from tunelab.train.data_prep import PreparedData
from tunelab.train.losses import preference as L
from tunelab.train.losses.logprobs import is_padding_free, sequence_logps, sequence_token_logps
from tunelab.train.trainers.reference import ReferenceTrainer, check_preference_config

logger = logging.getLogger("tunelab.train")

NAMES = ("kto",)  # the stage-table rows this room serves


def split_prompt_response(ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """The prompt (everything before the first trained token) and the trained response tokens."""
    start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
    return list(ids[:start]), [label for label in labels[start:] if label != IGNORE_INDEX]


def mismatched_rows(features: list[dict[str, Any]], cutoff_len: int) -> list[tuple[list[int], list[int]]]:
    """KL rows (x_i, y_{i-1}): each prompt with the previous example's response, as in the KTO paper
    (the same responses as the batch, paired with other prompts), cut to `cutoff_len`."""
    parts = [split_prompt_response(list(f["input_ids"]), list(f["labels"])) for f in features]
    rows = []
    for index, (prompt, _) in enumerate(parts):
        response = parts[index - 1][1]  # index 0 takes the last example's response
        ids = (prompt + response)[:cutoff_len]
        rows.append((ids, ([IGNORE_INDEX] * len(prompt) + response)[:cutoff_len]))
    return rows


KL_PREFIX = "kl_"  # a padding-free kto batch: the KL sequences' own packed rows, under these keys


@dataclass
class KTOCollator:
    """Sequences [0, B) are the examples, [B, 2B) their mismatched KL sequences; `kto_tags` says which are
    desirable.

    Padded: rows [0, B) and [B, 2B) of one padded batch. Padding-free: the examples packed under the
    usual keys and the KL sequences packed apart under `kl_`-prefixed keys (the policy scores the
    examples with gradients and the KL sequences without, so they go through it separately).
    """

    pad_token_id: int
    cutoff_len: int
    pad_to_multiple_of: int | None = None
    padding_free: bool = False
    varlen_attention: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [(list(f["input_ids"]), list(f["labels"])) for f in features]
        kl_rows = mismatched_rows(features, self.cutoff_len)
        if self.padding_free:
            batch = pack_sequences(rows, self.pad_token_id, self.varlen_attention)
            kl = pack_sequences(kl_rows, self.pad_token_id, self.varlen_attention)
            kl.pop(TOKEN_COUNT_KEY)
            kl.pop("use_cache")
            batch.update({KL_PREFIX + key: value for key, value in kl.items()})
            batch["kto_tags"] = torch.tensor([bool(f["kto_tag"]) for f in features], dtype=torch.bool)
            add_reference_values(features, batch)
            return batch
        batch = pad_right(rows + kl_rows, self.pad_token_id, self.pad_to_multiple_of)
        batch["kto_tags"] = torch.tensor([bool(f["kto_tag"]) for f in features], dtype=torch.bool)
        batch[TOKEN_COUNT_KEY] = batch["attention_mask"][: len(features)].sum()
        add_reference_values(features, batch)
        return batch


def make_collator(prepared: PreparedData, tokenizer: Any, model: Any, config: Config) -> KTOCollator:
    """Examples and their mismatched KL sequences, padding-free unless `padding_free: false`."""
    return KTOCollator(cutoff_len=int(config.data.cutoff_len), **pair_layout(tokenizer, model, config))


MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", "labels", SEQUENCE_INDEX_KEY)


def rows(batch: dict[str, Any], part: slice) -> dict[str, Any]:
    """Rows `part` of a padded batch (the examples are rows [0, B), their KL rows [B, 2B))."""
    return {k: batch[k][part] for k in ("input_ids", "attention_mask", "labels")}


def examples_part(batch: dict[str, Any]) -> dict[str, Any]:
    """The examples' rows of a padded or padding-free kto batch."""
    if is_padding_free(batch):
        return {k: batch[k] for k in MODEL_KEYS if k in batch}
    return rows(batch, slice(0, batch["kto_tags"].shape[0]))


def kl_part(batch: dict[str, Any]) -> dict[str, Any]:
    """The mismatched KL sequences' rows of a padded or padding-free kto batch."""
    if is_padding_free(batch):
        return {k: batch[KL_PREFIX + k] for k in MODEL_KEYS if KL_PREFIX + k in batch}
    return rows(batch, slice(batch["kto_tags"].shape[0], None))


def summed_logps(model: Any, part: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sequence's summed response log-prob and its token count."""
    return sequence_logps(*sequence_token_logps(model, part))


KTO_PRECOMPUTE_REFUSED = (
    "precompute_ref_log_probs is not supported by stage kto: its KL rows pair each prompt with a response of the "
    "same (shuffled) batch, so their reference log-probs cannot be computed ahead; drop the key (with LoRA the "
    "reference costs no extra memory)."
)


def check_config(config: Config) -> None:
    """KTO's own refusals plus the shared preference checks, run before any weights load."""
    check_preference_config(config)
    if config.finetuning.precompute_ref_log_probs:
        raise UserError(KTO_PRECOMPUTE_REFUSED)


EXAMPLES_KEY = "kto_examples"  # a training batch's own examples, for the step's KL rows (KTOTrainer.prepare_step)


@dataclass(frozen=True)
class BatchExamples:
    """A batch's examples (`input_ids`, `labels`), carried as one object so batch placement leaves it alone."""

    rows: tuple[dict[str, list[int]], ...]


@dataclass
class WithExamples:
    """The kto collator's batch plus its examples, which `KTOTrainer.prepare_step` pairs into KL rows across
    the whole accumulated batch (the collator's own KL rows pair examples of one micro-batch only)."""

    collator: Any

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(features)
        batch[EXAMPLES_KEY] = BatchExamples(tuple({"input_ids": list(f["input_ids"]), "labels": list(f["labels"])}
                                                  for f in features))
        return batch


class KTOTrainer(ReferenceTrainer):
    """KTO with `pref_beta`, `kto_chosen_weight` (λ_D), `kto_rejected_weight` (λ_U) and `pref_ftx`.

    In training, the reference point z₀ is the KL of the whole optimizer step: its mismatched rows
    (x_i, y_{i-1}) pair the examples of every micro-batch and every process in the order one process
    with the whole batch would see them (accelerate hands global batch m·P + r to process r as its
    micro-batch m), so batch 8 × accumulation 1, 2 × 4 and 2 processes × 2 × 2 train alike. In
    evaluation each batch's own KL rows (from the collator) give its z₀.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs.get("config")
        if config is not None and config.finetuning.precompute_ref_log_probs:
            raise UserError(KTO_PRECOMPUTE_REFUSED)
        super().__init__(*args, **kwargs)
        self.data_collator = WithExamples(self.data_collator)
        self.step_kl = torch.zeros(())
        if self.args.per_device_train_batch_size < 2:
            logger.warning("kto: per_device_train_batch_size is 1, so each example's mismatched KL row is the example "
                           "itself and the KL estimate equals its own reward; use a batch size of 2 or more.")

    def reference_values(self, ref: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if is_padding_free(batch):  # examples and KL sequences are packed apart: two passes
            return {"ref_logps": summed_logps(ref, examples_part(batch))[0],
                    "ref_kl_logps": summed_logps(ref, kl_part(batch))[0]}
        logps, _ = summed_logps(ref, rows(batch, slice(None)))  # padded: one pass over all rows
        half = logps.shape[0] // 2
        return {"ref_logps": logps[:half], "ref_kl_logps": logps[half:]}

    def step_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        tags = batch["kto_tags"]
        return {"examples": tags.numel(), "desirable": tags.sum()}  # the KTO loss / the SFT term average over these

    def prepare_step(self, batches: list[dict[str, Any]]) -> None:
        """z₀ of this step (Ethayarajh et al. 2024, sec. 4.1, as `losses.preference.kto_kl_estimate`): the mean
        policy-vs-reference log-ratio over the mismatched rows of the whole accumulated batch, clamped at 0."""
        local = [list(batch.pop(EXAMPLES_KEY).rows) for batch in batches]
        processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        if processes > 1:
            from accelerate.utils import gather_object

            by_rank = gather_object([local])
            order = [(r, m) for m in range(len(local)) for r in range(processes)]
            micro = [by_rank[r][m] for r, m in order]
        else:
            order, micro = [(0, m) for m in range(len(local))], local
        features = [example for part in micro for example in part]
        kl_rows = mismatched_rows(features, int(self.config.data.cutoff_len))
        mine, start = [], 0
        for (r, _), part in zip(order, micro, strict=True):
            if r == rank:
                mine.extend(kl_rows[start : start + len(part)])
            start += len(part)
        total = torch.zeros((), dtype=torch.float64, device=self.args.device)
        size = self.args.per_device_train_batch_size
        with torch.no_grad():
            for begin in range(0, len(mine), size):
                batch = self._kl_batch(mine[begin : begin + size])
                policy, _ = summed_logps(self.model, batch)
                with self.reference() as ref:
                    reference, _ = summed_logps(ref, batch)
                total = total + (policy - reference).double().sum()
        if processes > 1:
            total = self.accelerator.reduce(total, reduction="sum")
        self.step_kl = (total / max(len(features), 1)).clamp(min=0).float()

    def _kl_batch(self, kl_rows: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        """KL rows in the collator's layout (padding-free or padded), on the training device."""
        collator = self.data_collator.collator
        if collator.padding_free:
            batch = pack_sequences(kl_rows, collator.pad_token_id, collator.varlen_attention)
        else:
            batch = pad_right(kl_rows, collator.pad_token_id)
        return {k: v.to(self.args.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        ft = self.config.finetuning
        inputs.pop(EXAMPLES_KEY, None)
        tags = inputs["kto_tags"].bool()
        logps, lengths = summed_logps(model, examples_part(inputs))
        if num_items_in_batch is not None:  # training: z0 of the whole step (prepare_step)
            kl = self.step_kl.to(logps.device)
            with self.reference() as ref:
                ref_logps, _ = summed_logps(ref, examples_part(inputs))
        else:  # evaluation: z0 of this batch's own KL rows
            with torch.no_grad():
                kl_logps, _ = summed_logps(model, kl_part(inputs))
            with self.reference() as ref:
                values = self.reference_values(ref, inputs)
            ref_logps = values["ref_logps"]
            kl = L.kto_kl_estimate(kl_logps, values["ref_kl_logps"])
        ratios = logps - ref_logps
        losses = L.kto_loss(ratios[tags], ratios[~tags], kl, ft.pref_beta, ft.kto_chosen_weight, ft.kto_rejected_weight)
        loss = self.step_share(losses.sum(), "examples", num_items_in_batch, tags.numel())  # mean over the step
        parts: dict[str, Any] = {"kl": kl}
        avg = logps / lengths.clamp(min=1)
        if ft.pref_ftx > 1e-6:  # the SFT term: a mean over the step's desirable examples
            sft = L.sft_loss(avg[tags])
            parts["loss/kto"], parts["loss/sft"] = losses.detach(), sft.detach()
            loss = loss + ft.pref_ftx * self.step_share(sft.sum(), "desirable", num_items_in_batch, tags.sum())
        rewards = ft.pref_beta * ratios.detach()
        if bool(tags.any()):
            parts["rewards/chosen"], parts["logps/chosen"] = rewards[tags], logps[tags].detach()
        if bool((~tags).any()):
            parts["rewards/rejected"], parts["logps/rejected"] = rewards[~tags], logps[~tags].detach()
        if bool(tags.any()) and bool((~tags).any()):
            parts["rewards/margins"] = rewards[tags].mean() - rewards[~tags].mean()
        self.record(model, parts)
        return (loss, {"rewards": rewards}) if return_outputs else loss


Trainer = KTOTrainer
