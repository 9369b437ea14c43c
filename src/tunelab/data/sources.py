"""Where rows come from: local files and folders, the Hugging Face or ModelScope hub, a local loading
folder (`script_url`) or a cloud file. Every source yields the same `RawRow`s, so conversion and
validation do not care where data lives.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunelab.data.dataset_info import DatasetAttr
from tunelab.data.readers import RawRow, RowOrProblem, data_files, read_rows
from tunelab.data.validate import Problem
from tunelab.errors import UserError, require_package

logger = logging.getLogger("tunelab.data")

SOURCE_LABELS = {
    "hf_hub": "hf_hub_url", "ms_hub": "ms_hub_url", "script": "script_url", "cloud_file": "cloud_file_name",
    "file": "file_name",
}  # fmt: skip


def local_files(attr: DatasetAttr) -> list[Path]:
    """The local files of a `file_name` entry (empty for hub, script and cloud sources)."""
    if attr.load_from != "file":
        return []
    return data_files(Path(attr.path))


def iter_source_rows(attr: DatasetAttr, *, streaming: bool = False) -> Iterator[RowOrProblem]:
    """Every row of a registered data set, in order, with parse problems in place of bad rows.

    A data set with nothing in it (an empty file, `[]`, only blank lines, a CSV header alone) is a
    problem, not a clean check: training on it would fail later, or silently train on the other sets.
    """
    count = 0
    for item in _source_rows(attr, streaming=streaming):
        count += 1
        yield item
    if count == 0:
        yield _no_rows(attr)


def _no_rows(attr: DatasetAttr) -> Problem:
    if attr.load_from != "file":
        return Problem(f"{SOURCE_LABELS[attr.load_from]}:{attr.path}", 1, "file", "the data set has no rows")
    files = local_files(attr)
    what = f"none of its {len(files)} files holds a row" if Path(attr.path).is_dir() else (
        "the file is empty, holds only blank lines, an empty JSON array or a CSV header alone")
    return Problem(attr.path, 1, "file", f"the data set has no rows ({what})")


def _source_rows(attr: DatasetAttr, *, streaming: bool) -> Iterator[RowOrProblem]:
    if attr.load_from == "file":
        files = local_files(attr)
        _check_sha1(attr, files)
        for path in files:
            yield from read_rows(path)
    elif attr.load_from == "cloud_file":
        yield from _cloud_rows(attr)
    else:
        yield from _hub_rows(attr, streaming=streaming)


def _check_sha1(attr: DatasetAttr, files: list[Path]) -> None:
    """The anchor's `file_sha1`: a mismatch is worth a warning (the file changed since it was registered)."""
    if not attr.file_sha1 or len(files) != 1:
        return
    try:
        digest = hashlib.sha1(files[0].read_bytes()).hexdigest()
    except OSError as error:
        raise UserError(f"{files[0]}: cannot read the file: {error.strerror or error}") from None
    if digest != attr.file_sha1:
        logger.warning("%s: SHA-1 %s differs from file_sha1 %s in dataset_info.json", files[0], digest, attr.file_sha1)


def _source_error(attr: DatasetAttr, error: Exception) -> UserError:
    key = SOURCE_LABELS[attr.load_from]
    return UserError(
        f"data set '{attr.name}': cannot load {key} '{attr.path}': {type(error).__name__}: {error}. "
        "If you are offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or the hub is unreachable, download it "
        "first or point file_name at a local copy."
    )


def _hub_rows(attr: DatasetAttr, *, streaming: bool) -> Iterator[RowOrProblem]:
    try:
        dataset = _open_hub_dataset(attr, streaming=streaming)
    except UserError:
        raise
    except Exception as error:  # datasets raises many kinds for "not reachable / not found"
        raise _source_error(attr, error) from None
    label = f"{SOURCE_LABELS[attr.load_from]}:{attr.path}"
    for index, row in enumerate(dataset):
        yield RawRow(label, index + 1, dict(row))


def _open_hub_dataset(attr: DatasetAttr, *, streaming: bool) -> Any:
    if attr.load_from == "ms_hub":
        require_package("modelscope", f"loading data set '{attr.name}' from ModelScope (ms_hub_url)")
        from modelscope import MsDataset  # type: ignore[import-not-found]

        dataset = MsDataset.load(
            dataset_name=attr.path, subset_name=attr.subset, data_dir=attr.folder, split=attr.split,
            use_streaming=streaming,
        )  # fmt: skip
        return dataset.to_hf_dataset() if hasattr(dataset, "to_hf_dataset") else dataset

    import datasets

    return datasets.load_dataset(
        path=attr.path, name=attr.subset, data_dir=attr.folder, split=attr.split, revision=attr.revision,
        streaming=streaming,
    )  # fmt: skip


def _cloud_rows(attr: DatasetAttr) -> Iterator[RowOrProblem]:
    """A file on s3:// or gs:// (through fsspec), read with the same readers as local files."""
    import fsspec

    suffix = Path(attr.path).suffix
    try:
        with fsspec.open(attr.path, "rb") as remote:
            payload = remote.read()
    except Exception as error:
        raise _source_error(attr, error) from None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / f"data{suffix}"
        local.write_bytes(payload)
        for item in read_rows(local):
            yield type(item)(**{**item.__dict__, "file": attr.path})
