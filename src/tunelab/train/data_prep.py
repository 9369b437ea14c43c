"""Tokenized, packed (or not) train / eval sets for a stage: the glue between the data layer and a trainer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tunelab.config.resolved import Config
from tunelab.config.stages import DataKind, get_stage_spec
from tunelab.data.batching import chunk_tokens, pack_examples
from tunelab.data.conversation import Example
from tunelab.data.templates.base import Template

logger = logging.getLogger("tunelab.train")


SOURCE_KEY = "source"  # each encoded row's `file:row`, so a problem found after encoding still names its row
TRAINED_KEY = "trained_tokens"  # each encoded row's count of prediction targets (`encode.trained_tokens`)
#: how many untrained examples a warning names before it only counts
NAMED_UNTRAINED = 10


@dataclass
class PreparedData:
    train: Any  # a datasets.Dataset, or a list of packed rows
    eval: Any
    packed: bool
    untrained: int = 0  # examples left out because no token of theirs is trained (named in the log)


def _trained_or_named(row: dict[str, Any], split: str, stage: str) -> bool:
    if row[TRAINED_KEY] != 0:
        return True
    logger.warning("%s: %s has no trained token after encoding for stage %s (cut away by cutoff_len); left out",
                   split, row[SOURCE_KEY] or "an example", stage)
    return False


def drop_untrained(dataset: Any, split: str, stage: str) -> tuple[Any, int]:
    """The dataset without examples that have no trained token (a prompt longer than cutoff_len, an answer
    cut away), each named by file:row in one warning; such an example adds nothing to the gradient, and a
    batch of only such examples would log a loss of 0.0 that means nothing."""
    if dataset is None or TRAINED_KEY not in (getattr(dataset, "column_names", None) or []):
        return dataset, 0
    if not hasattr(dataset, "select"):  # streaming: rows are encoded as training reads them, so each is named then
        return dataset.filter(lambda row: _trained_or_named(row, split, stage)), 0
    counts = dataset[TRAINED_KEY]
    untrained = [index for index, count in enumerate(counts) if count == 0]
    if not untrained:
        return dataset, 0
    sources = dataset.select(untrained[:NAMED_UNTRAINED])[SOURCE_KEY]
    more = f" and {len(untrained) - NAMED_UNTRAINED} more" if len(untrained) > NAMED_UNTRAINED else ""
    logger.warning("%s: %d of %d examples have no trained token after encoding for stage %s (the answer was cut "
                   "away by cutoff_len, or the prompt alone fills it), so they are left out: %s%s. Raise "
                   "cutoff_len or shorten those prompts to train on them.", split, len(untrained), len(counts), stage,
                   ", ".join(source or "?" for source in sources), more)
    keep = sorted(set(range(len(counts))) - set(untrained))
    return dataset.select(keep), len(untrained)


def _rows(dataset: Any) -> list[dict[str, Any]]:
    return [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in dataset]


def _chunk_pretraining(rows: list[dict[str, Any]], cutoff_len: int) -> list[dict[str, Any]]:
    """Long texts become several rows of at most cutoff_len tokens; nothing is dropped."""
    out = []
    for row in rows:
        for piece in chunk_tokens(row["input_ids"], cutoff_len):
            out.append({"input_ids": piece, "labels": list(piece)})
    return out


def _shape(dataset: Any, config: Config) -> Any:
    """Chunk pre-training text and pack rows as `packing` asks; pass other data through unchanged."""
    if dataset is None:
        return None
    if isinstance(dataset, dict):
        return {name: _shape(part, config) for name, part in dataset.items()}
    spec, cutoff = get_stage_spec(config.finetuning.stage), config.data.cutoff_len
    if not spec.packable:
        return dataset  # pairs / kto rows / prompts are not one training sequence: their collators batch them
    if spec.data is DataKind.TEXT:
        rows = _chunk_pretraining(_rows(dataset), cutoff)
    elif config.data.packing:
        rows = _rows(dataset)
    else:
        return dataset
    if config.data.packing:
        packed = pack_examples(rows, cutoff)
        tokens = sum(len(r["input_ids"]) for r in rows)
        logger.info("packing: %d examples (%d tokens) into %d rows of at most %d tokens (%.1f%% filled)",
                    len(rows), tokens, len(packed), cutoff, 100 * tokens / max(len(packed) * cutoff, 1))
        return packed
    return rows


def prepare_data(config: Config, tokenizer: Any, template: Template) -> PreparedData:
    from tunelab.data.dataset import build_dataset
    from tunelab.data.encode import EncodeOptions, encode_example, trained_tokens

    stage = config.finetuning.stage
    options = EncodeOptions.from_data_args(config.data)

    kind = get_stage_spec(stage).data

    def encode(example: Example) -> dict[str, Any]:
        row = encode_example(tokenizer, template, example, stage, options)
        return {**row, SOURCE_KEY: str(example.source) if example.source else "",
                TRAINED_KEY: trained_tokens(row, kind)}

    splits = build_dataset(
        config.data, stage, tokenizer, encode,
        encode_id=f"{template!r}|{options!r}|rows:source,trained_tokens", seed=int(config.training_values.get("seed", 42)),
    )  # fmt: skip
    from tunelab.errors import UserError

    if splits.train is None and config.training_values.get("do_train"):
        raise UserError(f"dataset {config.data.dataset}: no training examples left after loading.")
    train, untrained = drop_untrained(splits.train, "train", stage)
    if isinstance(splits.eval, dict):
        evaluation = {name: drop_untrained(part, f"eval {name}", stage)[0] for name, part in splits.eval.items()}
    else:
        evaluation = drop_untrained(splits.eval, "eval", stage)[0]
    if train is not None and untrained and len(train) == 0 and config.training_values.get("do_train"):
        raise UserError(f"dataset {config.data.dataset}: none of its {untrained} examples has a trained token under "
                        f"cutoff_len {config.data.cutoff_len}; raise cutoff_len (see `tunelab data check "
                        f"{config.data.dataset} --model_name_or_path ... --cutoff_len N` for their lengths).")
    packed = bool(config.data.packing) and get_stage_spec(stage).packable
    if config.data.packing and not packed:
        logger.warning("packing does not apply to stage %s: its rows are padded per batch instead", stage)
    return PreparedData(train=_shape(train, config), eval=_shape(evaluation, config), packed=packed, untrained=untrained)
