"""Tokenized, packed (or not) train / eval sets for a stage: the glue between the data layer and a trainer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tunelab.config.resolved import Config
from tunelab.config.stages import DataKind, get_stage_spec
from tunelab.data.batching import chunk_tokens, pack_examples
from tunelab.data.templates.base import Template

logger = logging.getLogger("tunelab.train")


@dataclass
class PreparedData:
    train: Any  # a datasets.Dataset, or a list of packed rows
    eval: Any
    packed: bool


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
    from tunelab.data.encode import EncodeOptions, encode_example

    stage = config.finetuning.stage
    options = EncodeOptions.from_data_args(config.data)

    def encode(example: Any) -> dict[str, Any]:
        return encode_example(tokenizer, template, example, stage, options)

    splits = build_dataset(
        config.data, stage, tokenizer, encode,
        encode_id=f"{template!r}|{options!r}", seed=int(config.training_values.get("seed", 42)),
    )  # fmt: skip
    if splits.train is None and config.training_values.get("do_train"):
        from tunelab.errors import UserError

        raise UserError(f"dataset {config.data.dataset}: no training examples left after loading.")
    packed = bool(config.data.packing) and get_stage_spec(stage).packable
    if config.data.packing and not packed:
        logger.warning("packing does not apply to stage %s: its rows are padded per batch instead", stage)
    return PreparedData(train=_shape(splits.train, config), eval=_shape(splits.eval, config), packed=packed)
