"""Encoding examples in worker processes that inherit the examples and the encoder by fork.

`datasets.Dataset.from_generator(num_proc=n)` sends each worker its share of the examples with
dill, and dill-pickling 20,000 conversation examples alone took 2 s, more than the workers saved on
a 2-core machine (2 workers were slower than 1). Forked workers get the examples, the tokenizer and
the template for free (copy-on-write memory); only the encoded rows (lists of ints, fast to pickle)
come back, shard by shard and in order, so the caller can write them out as they arrive.

Where fork is not available (Windows, and macOS by default) callers use the single-process path.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

Shard = Sequence[Any]
EncodeFn = Callable[[Any], "Mapping[str, Any] | None"]

#: shards each worker encodes before the rows of that window are handed on
SHARDS_PER_WORKER_PER_WINDOW = 8

# Set in each worker process by its pool initializer (the fork-inherited shards and encoder); the
# parent process never writes it.
_WORKER: dict[str, Any] = {}


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _init_worker(shards: Sequence[Shard], encode: EncodeFn) -> None:
    _WORKER["shards"], _WORKER["encode"] = shards, encode


def encode_rows(shards: Sequence[Shard], encode: EncodeFn) -> Iterator[dict[str, Any]]:
    """The encoded rows of the shards in one process, in order; examples encoded to None are dropped."""
    for shard in shards:
        for example in shard:
            row = encode(example)
            if row is not None:
                yield dict(row)


def _encode_shard(index: int) -> tuple[str, Any]:
    try:
        return "rows", list(encode_rows([_WORKER["shards"][index]], _WORKER["encode"]))
    except Exception as error:  # noqa: BLE001 - re-raised in the parent, unchanged where it pickles
        return "error", _portable(error)


def _portable(error: Exception) -> Exception:
    """The error itself when it survives pickling (UserError does), else a RuntimeError with its text."""
    import pickle

    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")


def encode_in_workers(shards: Sequence[Shard], encode: EncodeFn, num_proc: int) -> Iterator[dict[str, Any]]:
    """Encoded rows of all shards, in order, from `num_proc` forked workers (needs `fork_available()`)."""
    context = multiprocessing.get_context("fork")
    window = num_proc * SHARDS_PER_WORKER_PER_WINDOW
    with context.Pool(num_proc, initializer=_init_worker, initargs=(shards, encode)) as pool:
        for start in range(0, len(shards), window):
            # a whole window is encoded before its rows are handed on: consuming rows while the
            # workers run made the consumer (Arrow writing) and the workers fight over the cores, and
            # took twice as long; a window bounds the memory the rows take
            results = pool.map(_encode_shard, range(start, min(start + window, len(shards))), chunksize=1)
            for kind, payload in results:
                if kind == "error":
                    raise payload
                yield from payload
