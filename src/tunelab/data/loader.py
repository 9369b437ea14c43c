"""Top-level data loading: names in `DataArguments` → validated `Example`s → train / eval lists.

This is the path training and `tunelab data check` share, so both report the same problems.
Tokenisation and its cache live in `dataset.py` / `cache.py`; this module stays pure Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.config.data_args import DataArguments
from tunelab.config.stages import get_stage_spec, stages_where
from tunelab.data.conversation import Example
from tunelab.data.dataset_info import DatasetAttr, get_dataset_attrs, resolve_dataset_dir
from tunelab.data.formats import CONVERTERS
from tunelab.data.formats.common import ConvertContext
from tunelab.data.mixing import mix, split_validation, take_first, take_samples
from tunelab.data.readers import RawRow
from tunelab.data.sources import iter_source_rows
from tunelab.data.validate import InvalidDataError, Problem, RowChecker
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.data")


@dataclass
class LoadedDataset:
    """One registered data set after reading and validation."""

    attr: DatasetAttr
    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0  # rows read (after num_samples / max_samples), valid or not

    @property
    def invalid_rows(self) -> int:
        return len({(p.file, p.row) for p in self.problems})


@dataclass
class ExampleSplits:
    """Train examples and evaluation examples (one list, or one per data set with `eval_on_each_dataset`)."""

    train: list[Example]
    eval: list[Example] | dict[str, list[Example]] | None = None


def check_stage(attr: DatasetAttr, stage: str) -> None:
    """The anchor's rule: preference stages need `ranking: true` data sets, the other stages refuse them."""
    kind = get_stage_spec(stage).data
    if kind.is_ranking and not attr.ranking:
        raise UserError(f"dataset: data set '{attr.name}' is not preference data (`ranking: true`), which stage {stage} "
                        "needs; pick a preference data set (e.g. dpo_en_demo) or another stage")
    if not kind.is_ranking and attr.ranking:
        pair_stages = " or ".join(stages_where(lambda spec: spec.data.is_ranking))
        raise UserError(
            f"dataset: data set '{attr.name}' is preference data (`ranking: true`); stage {stage} cannot use it (use "
            f"{pair_stages})"
        )
    if attr.formatting == "alpaca" and kind.needs_response and not attr.ranking and not attr.column("response"):
        raise UserError(
            f"data set '{attr.name}' has no response column (its `columns` in dataset_info.json name none), "
            f"which stage {stage} needs; if it is plain text for pre-training, use stage pt"
        )


def convert_rows(rows: list[RawRow | Problem], ctx: ConvertContext) -> LoadedDataset:
    """Convert and validate rows; every bad row leaves its problems, every good row an `Example`."""
    loaded = LoadedDataset(ctx.attr, rows=len(rows))
    convert = CONVERTERS[ctx.attr.formatting]
    for item in rows:
        if isinstance(item, Problem):
            loaded.problems.append(item)
            continue
        ck = RowChecker(item.file, item.row)
        example = convert(item.data, ctx, ck)
        if example is not None and ck.ok:
            loaded.examples.append(example)
        loaded.problems.extend(ck.problems)
    return loaded


def load_dataset(
    attr: DatasetAttr, stage: str, *, media_dir: str | None, max_samples: int | None = None, seed: int = 42,
    streaming: bool = False,
) -> LoadedDataset:  # fmt: skip
    """Read one data set, apply `num_samples` then `max_samples` (on rows, as the anchor), convert and validate."""
    check_stage(attr, stage)
    rows = list(iter_source_rows(attr, streaming=streaming))
    if attr.num_samples is not None:
        rows = take_samples(rows, attr.num_samples, seed)
    rows = take_first(rows, max_samples)
    ctx = ConvertContext(attr=attr, stage=stage, media_dir=media_dir)
    loaded = convert_rows(rows, ctx)
    logger.info(
        "data set %s (%s, %s): %d examples%s", attr.name, attr.formatting, attr.path, len(loaded.examples),
        f", {loaded.invalid_rows} invalid" if loaded.problems else "",
    )  # fmt: skip
    return loaded


def dataset_dir_of(data_args: DataArguments) -> Path:
    return resolve_dataset_dir(data_args.dataset_dir)


def load_datasets(names: list[str], data_args: DataArguments, stage: str, *, seed: int = 42) -> list[LoadedDataset]:
    """Each named data set, validated but not yet mixed; problems are returned, not raised."""
    dataset_dir = dataset_dir_of(data_args)
    media_dir = data_args.media_dir or str(dataset_dir)
    return [
        load_dataset(attr, stage, media_dir=media_dir, max_samples=data_args.max_samples, seed=seed,
                     streaming=data_args.streaming)  # fmt: skip
        for attr in get_dataset_attrs(names, dataset_dir)
    ]


def accept(loaded: list[LoadedDataset], skip_invalid: bool) -> list[list[Example]]:
    """Stop on problems (the default), or drop the invalid rows and say how many."""
    problems = [p for item in loaded for p in item.problems]
    if problems and not skip_invalid:
        raise InvalidDataError(problems)
    for item in loaded:
        if item.problems:
            logger.warning(
                "skip_invalid: dropped %d invalid examples of data set %s (%d problems; `tunelab data check %s` lists them)",
                item.invalid_rows, item.attr.name, len(item.problems), item.attr.name,
            )  # fmt: skip
    for item in loaded:
        if not item.examples:
            raise UserError(f"data set '{item.attr.name}' has no valid examples")
    return [item.examples for item in loaded]


def load_splits(data_args: DataArguments, stage: str, *, seed: int = 42) -> ExampleSplits:
    """Train and eval examples the way the anchor builds them: mix the train sets, then split off `val_size`
    unless `eval_dataset` names evaluation sets."""
    train_names, eval_names = data_args.dataset_names(), data_args.eval_dataset_names()
    if eval_names and data_args.val_size:
        raise UserError("set either val_size or eval_dataset, not both")
    probs = data_args.interleave_prob_values()
    train: list[Example] = []
    if train_names:
        parts = accept(load_datasets(train_names, data_args, stage, seed=seed), data_args.skip_invalid)
        train = mix(parts, data_args.mix_strategy, probs, seed)
    evaluation: list[Example] | dict[str, list[Example]] | None = None
    if eval_names:
        eval_loaded = load_datasets(eval_names, data_args, stage, seed=seed)
        eval_parts = accept(eval_loaded, data_args.skip_invalid)
        if data_args.eval_on_each_dataset:
            evaluation = {item.attr.name: part for item, part in zip(eval_loaded, eval_parts)}
        else:
            evaluation = mix(eval_parts, data_args.mix_strategy, probs if len(eval_parts) == len(train_names) else None, seed)
    elif data_args.val_size and train:
        train, evaluation = split_validation(train, data_args.val_size, seed)
        logger.info("val_size %g: %d train and %d eval examples", data_args.val_size, len(train), len(evaluation))
    return ExampleSplits(train=train, eval=evaluation)


def load_examples(data_args: DataArguments, stage: str, split: str = "train", *, seed: int = 42) -> list[Example]:
    """The validated examples of one split ("train" or "eval"), mixed as `mix_strategy` says."""
    splits = load_splits(data_args, stage, seed=seed)
    if split == "train":
        return splits.train
    if split in ("eval", "validation"):
        if isinstance(splits.eval, dict):
            return [example for part in splits.eval.values() for example in part]
        return splits.eval or []
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
