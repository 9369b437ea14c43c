"""From `DataArguments` to tokenized train / eval `datasets` objects: the one call training makes.

Loading and validation are `loader.py`; encoding is the caller's `encode` function (the template
engine); this module wires them to the cache, `tokenized_path` and streaming.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config.data_args import DataArguments
from tunelab.data.cache import (
    EncodeFn,
    TokenizedCache,
    cache_key,
    encode_examples,
    hash_files,
    tokenizer_fingerprint,
)
from tunelab.data.conversation import Example
from tunelab.data.dataset_info import get_dataset_attrs
from tunelab.data.loader import dataset_dir_of, load_splits
from tunelab.data.sources import local_files

logger = logging.getLogger("tunelab.data")

# DataArguments fields that never change the tokens or the choice of examples.
NOT_IN_KEY = frozenset({
    "overwrite_cache", "preprocessing_num_workers", "preprocessing_batch_size", "tokenized_path",
    "eval_num_beams", "streaming", "buffer_size",
})  # fmt: skip


@dataclass
class TokenizedSplits:
    """What training consumes: a train set and an eval set (or one per eval data set), either may be None."""

    train: Any = None  # datasets.Dataset | datasets.IterableDataset | None
    eval: Any = None  # datasets.Dataset | dict[str, datasets.Dataset] | None


def _data_fingerprint(data_args: DataArguments) -> dict[str, Any]:
    """Registry entries and file contents of every data set the arguments name."""
    names = data_args.dataset_names() + data_args.eval_dataset_names()
    out: dict[str, Any] = {}
    for attr in get_dataset_attrs(names, dataset_dir_of(data_args)):
        files = local_files(attr)
        out[attr.name] = {"entry": dataclasses.asdict(attr), "files": hash_files(files) if files else None}
    return out


def _splits_to_encode(data_args: DataArguments, stage: str, seed: int) -> dict[str, list[Example]]:
    splits = load_splits(data_args, stage, seed=seed)
    out: dict[str, list[Example]] = {}
    if splits.train:
        out["train"] = splits.train
    if isinstance(splits.eval, dict):
        out.update({f"validation_{name}": part for name, part in splits.eval.items()})
    elif splits.eval:
        out["validation"] = splits.eval
    return out


def _as_tokenized(splits: dict[str, Any]) -> TokenizedSplits:
    per_set = {name[len("validation_"):]: d for name, d in splits.items() if name.startswith("validation_")}
    return TokenizedSplits(train=splits.get("train"), eval=per_set or splits.get("validation"))


def build_dataset(
    data_args: DataArguments, stage: str, tokenizer: Any, encode: EncodeFn, *, encode_id: str, seed: int = 42,
    cache_dir: str | Path | None = None,
) -> TokenizedSplits:  # fmt: skip
    """Tokenized train / eval data for a stage.

    `encode(example) -> {"input_ids": [...], ...} | None` turns one `Example` into one row; `encode_id`
    names everything about the encoder that changes its output (template name and options), so the
    cache knows when to rebuild. Order of precedence: an existing `tokenized_path`, then the cache, then
    loading, validating and encoding (saved to the cache, and to `tokenized_path` when set).
    """
    from datasets import DatasetDict, load_from_disk

    def describe() -> dict[str, Any]:
        return {
            "tunelab": __import__("tunelab").__version__,
            "stage": stage,
            "seed": seed,
            "options": {k: v for k, v in dataclasses.asdict(data_args).items() if k not in NOT_IN_KEY},
            "data": _data_fingerprint(data_args),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "encoder": encode_id,
        }

    tokenized = Path(data_args.tokenized_path) if data_args.tokenized_path else None
    if tokenized is not None and tokenized.exists() and not data_args.overwrite_cache:
        _refuse_stale_tokenized_path(tokenized, describe)
        loaded = load_from_disk(str(tokenized))
        logger.info("loaded tokenized data from tokenized_path %s; data set options are ignored", tokenized)
        return _as_tokenized(dict(loaded) if isinstance(loaded, DatasetDict) else {"train": loaded})

    if data_args.streaming:
        return _streaming(data_args, stage, encode, seed)

    description = describe()
    key = cache_key(description)

    def build() -> dict[str, Any]:
        return {
            name: encode_examples(
                examples, encode, num_proc=data_args.preprocessing_num_workers,
                batch_size=data_args.preprocessing_batch_size,
            )  # fmt: skip
            for name, examples in _splits_to_encode(data_args, stage, seed).items()
        }

    splits = TokenizedCache(Path(cache_dir) if cache_dir else None).get_or_build(
        key, build, description, overwrite=data_args.overwrite_cache
    )
    if tokenized is not None:
        if tokenized.exists():  # overwrite_cache: the data is tokenized again on purpose
            shutil.rmtree(tokenized)
        DatasetDict(splits).save_to_disk(str(tokenized))
        (tokenized / TOKENIZED_RECORD).write_text(json.dumps(_what_decides(description), default=str, indent=1))
        logger.info("saved tokenized data to tokenized_path %s", tokenized)
    return _as_tokenized(splits)


TOKENIZED_RECORD = "tunelab_tokenized.json"  # what a tokenized_path was made from


def _what_decides(description: dict[str, Any]) -> dict[str, Any]:
    """The parts of the cache description that decide the tokens (not tunelab's version or worker counts)."""
    return {key: description[key] for key in ("data", "tokenizer", "encoder", "stage")}


def _refuse_stale_tokenized_path(tokenized: Path, describe: Callable[[], dict[str, Any]]) -> None:
    """A tokenized_path made from other data, another tokenizer or template is not reused without a word.

    LLaMA-Factory reuses whatever the folder holds. Here the folder records what it was made from; when
    the data sets it names can still be read and something differs, the run stops naming it. A folder
    from another tool (no record), or one whose data is not on this machine, is used as it is, with a
    line saying it could not be checked.
    """
    from tunelab.errors import UserError

    record_file = tokenized / TOKENIZED_RECORD
    if not record_file.is_file():
        logger.info("tokenized_path %s has no %s (another tool wrote it): it is used as it is, unchecked",
                    tokenized, TOKENIZED_RECORD)
        return
    try:
        recorded = json.loads(record_file.read_text(encoding="utf-8"))
        now = json.loads(json.dumps(_what_decides(describe()), default=str))
    except (UserError, OSError, ValueError) as error:
        logger.info("tokenized_path %s: the data it was made from cannot be read here (%s); it is used as it is",
                    tokenized, str(error).splitlines()[0][:200])
        return
    changed = [what for what in ("data", "tokenizer", "encoder", "stage") if recorded.get(what) != now[what]]
    if changed:
        names = {"data": "the data sets (a file or dataset_info entry)", "tokenizer": "the tokenizer",
                 "encoder": "the template or encoding options", "stage": "the stage"}
        raise UserError(f"tokenized_path {tokenized} was made from other inputs: {', '.join(names[c] for c in changed)} "
                        "changed since. Set overwrite_cache: true to tokenize again into it, or delete the folder; to "
                        "train on it as it is anyway, delete its tunelab_tokenized.json.")


def _streaming(data_args: DataArguments, stage: str, encode: EncodeFn, seed: int) -> TokenizedSplits:
    """Streaming: the train set is encoded lazily as training reads it, shuffled in a `buffer_size` buffer."""
    from datasets import IterableDataset

    parts = _splits_to_encode(data_args, stage, seed)
    train = None
    if "train" in parts:
        examples = parts.pop("train")

        def rows() -> Any:
            for example in examples:
                row = encode(example)
                if row is not None:
                    yield dict(row)

        train = IterableDataset.from_generator(rows).shuffle(seed=seed, buffer_size=data_args.buffer_size)
    evaluation = {name: encode_examples(ex, encode) for name, ex in parts.items()}
    return TokenizedSplits(train=train, eval=_as_tokenized(evaluation).eval)
