"""Which checkpoint a run resumes from, and the refusal to resume or overwrite silently.

A checkpoint is resumed only when every file its manifest lists is there with the size and sha256 it
was written with: a deleted `optimizer.pt` or a flipped byte in the weights would otherwise resume with
fresh optimizer state or damaged weights and no word. `overwrite_output_dir` removes the old run's
checkpoints at start, so a later `resume_from_checkpoint: true` can only find this run's.

A checkpoint also belongs to one run: the config values that decide the weights, and the data.

Every checkpoint carries `tunelab_run.json`: a hash of those values plus the values themselves, and
a fingerprint of the training data (the sha256 of each data file, each data set's dataset_info entry,
the tokenizer, and the files of `tokenized_path` when one is used). Resuming compares them with the
new run's, so a checkpoint of another configuration (another seed, learning rate, model, stage) or
of data that changed since is refused, naming the keys (old -> new) or the file, instead of silently
continuing a different run. Output and logging keys (output_dir, logging_steps, save_steps, report_to,
workers ...) are not part of it: changing them does not change the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.train")

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a checkpoint is complete when its trainer_state.json exists)."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    complete = [p for p in found if (p / "trainer_state.json").is_file()]
    for partial in sorted(set(found) - set(complete)):
        logger.warning("ignoring incomplete checkpoint %s (no trainer_state.json)", partial)
    return sorted(complete, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))  # type: ignore[union-attr]


def resolve_resume(output_dir: str, resume_from_checkpoint: str | None, overwrite_output_dir: bool) -> str | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to pick for the user."""
    from tunelab.train.run.atomic_publish import discard_staging
    from tunelab.utils.publish import recover

    out = Path(output_dir)
    recover(out, keep_nested_manifests=True)  # a final save killed between its two renames: the run folder comes back
    discard_staging(out)
    checkpoints = list_checkpoints(out)
    if resume_from_checkpoint is not None and str(resume_from_checkpoint).lower() in ("true", "1", "yes"):
        if not checkpoints:
            raise UserError(f"resume_from_checkpoint: true but {out} holds no complete checkpoint-* folder.")
        check_checkpoint_files(checkpoints[-1], earlier=checkpoints[:-1])
        logger.info("resuming from the latest checkpoint %s", checkpoints[-1])
        return str(checkpoints[-1])
    if resume_from_checkpoint is not None and str(resume_from_checkpoint).lower() not in ("false", "0", "no", ""):
        path = Path(resume_from_checkpoint)
        if not (path / "trainer_state.json").is_file():
            raise UserError(f"resume_from_checkpoint: {path} is not a complete checkpoint (no trainer_state.json).")
        number = _CHECKPOINT.match(path.name)
        earlier = [p for p in list_checkpoints(path.parent)
                   if number and int(_CHECKPOINT.match(p.name).group(1)) < int(number.group(1))]  # type: ignore[union-attr]
        check_checkpoint_files(path, earlier=earlier)
        logger.info("resuming from %s", path)
        return str(path)
    if checkpoints and not overwrite_output_dir:
        raise UserError(
            f"output_dir {out} already holds checkpoints (latest: {checkpoints[-1].name}). Choose one: "
            "resume_from_checkpoint: true to continue that run, or overwrite_output_dir: true to start afresh "
            "(or pick another output_dir)."
        )
    if checkpoints and overwrite_output_dir:
        remove_old_checkpoints(out)
    return None


def remove_old_checkpoints(out: Path) -> list[Path]:
    """overwrite_output_dir: delete the old run's checkpoint-* folders (complete or not), named in the log."""
    old = sorted(p for p in out.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name))
    for path in old:
        shutil.rmtree(path, ignore_errors=True)  # another rank of the same start may be removing it too
    if old:
        logger.warning("overwrite_output_dir: removed the %d checkpoints of the earlier run in %s (%s) before "
                       "starting afresh", len(old), out, ", ".join(p.name for p in old))
    return old


def check_checkpoint_files(checkpoint: Path, earlier: list[Path]) -> None:
    """Refuse a checkpoint whose files differ from its manifest (missing, resized, changed), naming them."""
    from tunelab.utils.publish import MANIFEST_NAME, folder_problems

    if not (checkpoint / MANIFEST_NAME).is_file():
        logger.warning("%s has no %s (written by another tool or an older tunelab): its files cannot be checked "
                       "before resuming", checkpoint, MANIFEST_NAME)
        return
    try:
        problems = folder_problems(checkpoint, hashes=True)
    except UserError as error:  # the manifest itself does not parse
        problems = [str(error)]
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        other = (f"resume from the earlier {earlier[-1]} (resume_from_checkpoint: {earlier[-1]})" if earlier
                 else "start afresh with overwrite_output_dir: true")
        raise UserError(f"cannot resume {checkpoint}: it is not as it was written ({listed}); resuming would start "
                        f"with fresh or damaged state. Restore the file, {other}, or delete the checkpoint.")


RUN_FILE = "tunelab_run.json"

# fields of the model / data / finetuning groups that never change the trained weights
_NOT_WEIGHTS = frozenset({
    "cache_dir", "low_cpu_mem_usage", "infer_backend", "offload_folder", "use_cache", "use_kv_cache", "infer_dtype",
    "hf_hub_token", "ms_hub_token", "om_hub_token", "print_param_status", "vllm_maxlen", "vllm_gpu_util",
    "vllm_enforce_eager", "vllm_max_lora_rank", "vllm_config", "disable_gradient_checkpointing", "use_reentrant_gc",
    "flash_attn", "enable_liger_kernel",  # how it is computed, not what: the same weights up to rounding
    "check_template", "overwrite_cache", "preprocessing_batch_size", "preprocessing_num_workers", "eval_num_beams",
    "dataset_dir", "media_dir", "tokenized_path", "eval_dataset", "eval_on_each_dataset",  # the data fingerprint holds the contents
    "compute_accuracy", "plot_loss", "include_effective_tokens_per_second",
})  # fmt: skip
# TrainingArguments that decide the weights: seed, batch, optimizer and schedule, precision
_TRAINING_KEYS = (
    "seed", "data_seed", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "num_train_epochs", "max_steps",
    "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_ratio", "warmup_steps", "optim", "optim_args",
    "label_smoothing_factor", "bf16", "fp16", "train_sampling_strategy", "world_size",
)  # fmt: skip


def _plain(value: Any) -> Any:
    """A JSON value that compares equal across runs (enums by value, paths and odd types as text)."""
    import enum

    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def weight_values(config: Config, args: Any) -> dict[str, Any]:
    """The values that decide the weights, flat (key -> value), from the config groups and TrainingArguments."""
    values: dict[str, Any] = {}
    for group in (config.model, config.data, config.finetuning):
        for field in dataclasses.fields(group):
            if field.name not in _NOT_WEIGHTS:
                values[field.name] = _plain(getattr(group, field.name))
    for key in _TRAINING_KEYS:
        if hasattr(args, key):
            values[key] = _plain(getattr(args, key))
    return values


def values_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def data_fingerprint(config: Config, tokenizer: Any) -> dict[str, Any]:
    """sha256 of every local data file and of `tokenized_path`'s files, the dataset_info entries, the tokenizer."""
    from tunelab.data.cache import tokenizer_fingerprint
    from tunelab.data.dataset_info import get_dataset_attrs
    from tunelab.data.loader import dataset_dir_of
    from tunelab.data.sources import local_files
    from tunelab.utils.publish import sha256_of

    files: dict[str, str] = {}
    entries: dict[str, Any] = {}
    tokenized = config.data.tokenized_path
    if tokenized and Path(tokenized).exists():  # training reads only this; the data set options are ignored
        root = Path(tokenized)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files[str(path)] = sha256_of(path)
    else:
        for attr in get_dataset_attrs(config.data.dataset_names(), dataset_dir_of(config.data)):
            entries[attr.name] = _plain(dataclasses.asdict(attr))
            for path in local_files(attr):
                files[str(path)] = sha256_of(path)
    return {"files": files, "dataset_info": entries, "tokenizer": tokenizer_fingerprint(tokenizer)}


def run_record(config: Config, args: Any, tokenizer: Any) -> dict[str, Any]:
    """What every checkpoint of this run records in tunelab_run.json."""
    values = weight_values(config, args)
    return {"tunelab_run": 1, "config_hash": values_hash(values), "config": values,
            "data": data_fingerprint(config, tokenizer)}


def write_run_record(folder: Path, record: dict[str, Any]) -> None:
    (folder / RUN_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def check_same_run(checkpoint: Path, record: dict[str, Any]) -> None:
    """Refuse to resume `checkpoint` into a run whose weight-deciding values or data differ from its own."""
    path = checkpoint / RUN_FILE
    if not path.is_file():
        logger.warning("%s has no %s (written by another tool or an older tunelab): its configuration and data "
                       "cannot be compared with this run's; resuming it as it is", checkpoint, RUN_FILE)
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_values, old_data = dict(old["config"]), dict(old["data"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is damaged; resume from an earlier checkpoint or start afresh "
                        "(overwrite_output_dir: true).") from None
    if old.get("config_hash") != record["config_hash"]:
        new_values = record["config"]
        changed = [f"{key}: {old_values.get(key, '(unset)')!r} -> {new_values.get(key, '(unset)')!r}"
                   for key in sorted(set(old_values) | set(new_values)) if old_values.get(key) != new_values.get(key)]
        raise UserError(f"cannot resume {checkpoint}: it was trained with another configuration ("
                        f"{'; '.join(changed) or 'the recorded hash differs'}). Set these keys back to continue that "
                        "run, or start afresh with overwrite_output_dir: true (or another output_dir).")
    _check_same_data(checkpoint, old_data, record["data"])


def _check_same_data(checkpoint: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    problems = []
    old_files, new_files = old.get("files", {}), new.get("files", {})
    for name in sorted(set(old_files) | set(new_files)):
        if name not in new_files:
            problems.append(f"{name} is no longer part of the data")
        elif name not in old_files:
            problems.append(f"{name} was not part of the data")
        elif old_files[name] != new_files[name]:
            problems.append(f"{name} changed (sha256)")
    old_entries, new_entries = old.get("dataset_info", {}), new.get("dataset_info", {})
    problems += [f"the dataset_info entry of {name} changed" for name in sorted(set(old_entries) | set(new_entries))
                 if old_entries.get(name) != new_entries.get(name)]
    if old.get("tokenizer") != new.get("tokenizer"):
        problems.append("the tokenizer changed")
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UserError(f"cannot resume {checkpoint}: the training data changed since it was saved ({listed}). "
                        "Restore the data as it was to continue that run, or start afresh on the new data with "
                        "overwrite_output_dir: true (or another output_dir); the tokenized cache follows the data "
                        "by itself.")
