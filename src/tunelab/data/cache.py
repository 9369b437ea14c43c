"""The tokenized-data cache: encode once, reuse while nothing that changes the tokens has changed.

The key hashes the data files' contents, the registry entries, the tokenizer, the template (as the
caller names it) and every data option that changes which examples are used or how they are encoded.
Any change gives a new key, so a stale cache is never read; `overwrite_cache` rebuilds on purpose.
Encoding is a callable passed in, so this module does not depend on the template engine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunelab.data.conversation import Example

logger = logging.getLogger("tunelab.data")

EncodeFn = Callable[[Example], "Mapping[str, Any] | None"]
META = "tunelab_cache.json"


def default_cache_dir() -> Path:
    """`$TUNELAB_CACHE/tokenized`, by default `~/.cache/tunelab/tokenized`."""
    return Path(os.environ.get("TUNELAB_CACHE", Path.home() / ".cache" / "tunelab")).expanduser() / "tokenized"


def hash_files(paths: Iterable[Path]) -> str:
    """Content hash of data files (names included, so a renamed file is a change too)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """What makes a tokenizer produce different ids: its vocabulary and merges, added and special tokens,
    chat template and class."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for attr in ("chat_template", "special_tokens_map", "added_tokens_decoder", "padding_side", "model_max_length"):
        digest.update(repr(getattr(tokenizer, attr, None)).encode())
    return digest.hexdigest()


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hash of the key parts (any JSON-able values)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _rows_from_workers(shards: Sequence[Sequence[Example]], encode: EncodeFn, num_proc: int) -> Iterator[dict[str, Any]]:
    from tunelab.data.parallel_encode import encode_in_workers

    yield from encode_in_workers(shards, encode, num_proc)


def encode_examples(
    examples: Sequence[Example], encode: EncodeFn, *, num_proc: int | None = None, batch_size: int = 1000,
    work_dir: Path | None = None,
) -> Any:  # fmt: skip
    """Encode examples into an Arrow-backed `datasets.Dataset` (in `num_proc` processes when asked).
    Examples for which `encode` returns None are dropped and counted."""
    from datasets import Dataset

    if not examples:
        return Dataset.from_dict({})
    from tunelab.data.parallel_encode import encode_rows, fork_available

    shards = [list(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]
    workers = min(num_proc or 1, len(shards))
    if workers > 1 and fork_available():
        # a tuple, not a list: datasets splits list-valued gen_kwargs and calls the generator once per item
        generator, gen_kwargs, proc = _rows_from_workers, {"shards": tuple(shards), "encode": encode,
                                                           "num_proc": workers}, None
    else:  # one process, or datasets' own workers where fork is not available
        generator, gen_kwargs, proc = encode_rows, {"shards": shards, "encode": encode}, (workers if workers > 1 else None)
    from datasets.exceptions import DatasetGenerationError

    from tunelab.errors import UserError

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        try:
            dataset = Dataset.from_generator(
                generator, gen_kwargs=gen_kwargs, cache_dir=tmp, num_proc=proc,
                fingerprint=hashlib.sha256(os.urandom(16)).hexdigest(), keep_in_memory=True,
            )  # fmt: skip
        except DatasetGenerationError as error:  # datasets wraps what the encoder raised
            if isinstance(error.__cause__, UserError):
                raise error.__cause__ from None
            raise
    dropped = len(examples) - len(dataset)
    if dropped:
        logger.warning("encoding dropped %d of %d examples (the encoder returned nothing for them)", dropped, len(examples))
    return dataset


class TokenizedCache:
    """A folder of tokenized splits per key: `root/<key>/<split>` saved with `save_to_disk`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> dict[str, Any] | None:
        """The cached splits, or None when there are none or the entry is damaged (a warning says which;
        the caller rebuilds it: a damaged cache must not fail every run until someone deletes it)."""
        folder = self.path(key)
        meta = folder / META
        if not meta.is_file():
            return None
        from datasets import load_from_disk

        from tunelab.utils.publish import folder_problems

        changed = folder_problems(folder, hashes=True)  # an entry edited after it was written is not the data's
        if changed:
            logger.warning("tokenized cache %s is damaged: it changed after it was written (%s); rebuilding it",
                           folder, "; ".join(changed[:3]))
            shutil.rmtree(folder, ignore_errors=True)
            return None
        try:
            splits = json.loads(meta.read_text(encoding="utf-8"))["splits"]
            loaded = {name: load_from_disk(str(folder / name)) for name in splits}
            for dataset in loaded.values():
                len(dataset)
                if len(dataset):
                    dataset[0], dataset[len(dataset) - 1]  # noqa: B018 - reading the first and last rows finds a cut file
        except Exception as error:  # noqa: BLE001 - any damage (bad JSON, missing or cut Arrow files) means rebuild
            logger.warning("tokenized cache %s is damaged (%s: %s); rebuilding it", folder, type(error).__name__,
                           str(error)[:200])
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return loaded

    def save(self, key: str, splits: Mapping[str, Any], description: Mapping[str, Any]) -> None:
        """Write to a temporary folder and rename it, so a crash never leaves a half cache behind."""
        from tunelab.errors import UserError
        from tunelab.utils.publish import is_disk_full, write_manifest

        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}-"))
        try:
            for name, dataset in splits.items():
                dataset.save_to_disk(str(staging / name))
            (staging / META).write_text(json.dumps({"splits": list(splits), "key": dict(description)}, indent=2,
                                                   default=str))
            write_manifest(staging, "tokenized cache")  # every file's size and sha256: `load` checks them
        except Exception as error:
            shutil.rmtree(staging, ignore_errors=True)
            if is_disk_full(error):  # datasets / pyarrow wrap ENOSPC in their own exception types
                raise UserError(f"writing the tokenized cache to {self.root} failed: No space left on device (the disk "
                                "is full); the partial entry was removed. Free disk space, or point TUNELAB_CACHE "
                                "at another disk.") from None
            raise
        target = self.path(key)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)

    def get_or_build(
        self, key: str, build: Callable[[], Mapping[str, Any]], description: Mapping[str, Any], *,
        overwrite: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """Reuse the splits saved under `key`, or build, save and reload them (memory-mapped)."""
        if not overwrite:
            cached = self.load(key)
            if cached is not None:
                logger.info("reused tokenized cache %s (%s)", self.path(key), ", ".join(f"{n}: {len(d)} rows" for n, d in cached.items()))
                return cached
        elif self.path(key).exists():
            logger.info("overwrite_cache: rebuilding tokenized cache %s", self.path(key))
        splits = build()
        self.save(key, splits, description)
        logger.info("saved tokenized cache %s", self.path(key))
        loaded = self.load(key)
        assert loaded is not None
        return loaded
