"""Tokenized, packed (or not) train / eval sets for a stage: the glue between the data layer and a trainer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tunelab.config.resolved import Config
from tunelab.config.stages import DataKind, get_stage_spec
from tunelab.data.batching import chunk_tokens, pack_examples
from tunelab.data.conversation import Example
from tunelab.data.encode_media import MediaEncoding
from tunelab.data.templates.base import Template
from tunelab.errors import UserError

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
    media: MediaEncoding | None = None  # a multimodal model's processor: its collator decodes the rows' media


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


def _refuse_media(example: Example, config: Config, media: MediaEncoding | None, kind: DataKind) -> None:
    """Media the run cannot train on stop it by name: nothing is dropped, no marker trained as text."""
    kinds = " / ".join(k for k in ("images", "videos", "audios") if getattr(example, k))
    where = str(example.source) if example.source else f"data set {config.data.dataset}"
    if media is None:
        raise UserError(
            f"{where}: {kinds}: model_name_or_path '{config.model.model_name_or_path}' is a text-only model, so the "
            f"{kinds} would be dropped and markers such as <image> trained as plain text. Use a multimodal model "
            "(docs/multimodal.md lists the families), or remove the media columns from the data set's `columns` in "
            "dataset_info.json to train on the text alone.")
    if kind is not DataKind.CHAT:
        raise UserError(f"{where}: {kinds}: multimodal data trains with stage sft; stage {config.finetuning.stage} "
                        "reads text only in tunelab for now. Use stage: sft, or remove the media columns.")


def prepare_data(config: Config, tokenizer: Any, template: Template, media: MediaEncoding | None = None) -> PreparedData:
    """Encode the configured data for the stage; `media` (a multimodal model's processor) lets examples with
    images, videos or audios be encoded by data/encode_media.py, and refuses them when it is None."""
    from tunelab.data.dataset import build_dataset
    from tunelab.data.encode import EncodeOptions, encode_example, trained_tokens
    from tunelab.data.encode_media import MARKER_ORDER_KEY, MEDIA_KEYS, encode_supervised_media, has_media

    stage = config.finetuning.stage
    options = EncodeOptions.from_data_args(config.data)

    kind = get_stage_spec(stage).data
    empty_media = {**{key: [] for key in MEDIA_KEYS}, MARKER_ORDER_KEY: ""} if media is not None else {}

    def encode(example: Example) -> dict[str, Any]:
        if has_media(example):
            _refuse_media(example, config, media, kind)
            row = encode_supervised_media(tokenizer, template, example, media, options)
        else:  # every row of a multimodal run has the media columns (a data set's rows share one schema)
            row = {**encode_example(tokenizer, template, example, stage, options), **empty_media}
        return {**row, SOURCE_KEY: str(example.source) if example.source else "",
                TRAINED_KEY: trained_tokens(row, kind)}

    media_id = f"|media:{media.cache_id()}" if media is not None else ""
    splits = build_dataset(
        config.data, stage, tokenizer, encode,
        encode_id=f"{template!r}|{options!r}|rows:source,trained_tokens{media_id}",
        seed=int(config.training_values.get("seed", 42)),
    )  # fmt: skip

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
    if packed and media is not None:
        raise UserError("packing: true with a multimodal model: rows packed ahead of time would separate pictures "
                        "from their batch; set packing: false (padding_free: true batches Qwen-VL examples without "
                        "padding, docs/multimodal.md).")
    return PreparedData(train=_shape(train, config), eval=_shape(evaluation, config), packed=packed, untrained=untrained,
                        media=media)
