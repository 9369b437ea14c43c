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
    """Every row of a registered data set, in order, with parse problems in place of bad rows."""
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
    digest = hashlib.sha1(files[0].read_bytes()).hexdigest()
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
