"""The data sets a config names, checked without reading a row: each name is registered (in the
user's dataset_info.json or tunelab's bundle), its entry is valid, fits the stage, and its local file
exists. `tunelab check` and the checks before training report every such problem in one list."""

from __future__ import annotations

from pathlib import Path

from tunelab.config.data_args import DataArguments
from tunelab.data.dataset_info import DATA_CONFIG, get_dataset_attr, load_dataset_info, resolve_dataset_dir
from tunelab.errors import UserError


def dataset_problems(data: DataArguments, stage: str) -> list[str]:
    """Every problem with the data sets of `dataset` / `eval_dataset`, each naming the data set and the fix."""
    from tunelab.data.loader import check_stage

    names = list(dict.fromkeys(data.dataset_names() + data.eval_dataset_names()))
    if not names:
        return []
    dataset_dir = resolve_dataset_dir(data.dataset_dir)
    if not dataset_dir.is_dir():
        return [f"dataset_dir: '{data.dataset_dir}' is not an existing folder; it must hold {DATA_CONFIG} and the "
                "data files (the default, data, falls back to tunelab's bundled data when ./data does not exist)."]
    try:
        info = load_dataset_info(dataset_dir)
    except UserError as error:
        return [error.message]
    problems: list[str] = []
    for name in names:
        try:
            attr = get_dataset_attr(name, info, dataset_dir)
            check_stage(attr, stage)
        except UserError as error:
            problems.append(error.message)
            continue
        if attr.load_from in ("file", "script") and not Path(attr.path).exists():
            problems.append(f"data set '{name}': {attr.path} does not exist ({dataset_dir / DATA_CONFIG} names it); "
                            "put the file there or fix the entry's file_name.")
    return problems
