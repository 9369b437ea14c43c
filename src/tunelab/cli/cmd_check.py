"""`tunelab check cfg.yaml [overrides]`: validate a config without loading weights and print it resolved."""

from __future__ import annotations

import enum
from typing import Any

from tunelab.config.parser import read_config
from tunelab.config.resolved import Config
from tunelab.errors import raise_problems

# Keys shown for each group even when left at their default: the ones a reader of a run wants to see.
SHOWN_BY_DEFAULT: dict[str, tuple[str, ...]] = {
    "model": ("model_name_or_path", "adapter_name_or_path", "flash_attn", "quantization_bit", "trust_remote_code"),
    "data": ("dataset", "eval_dataset", "dataset_dir", "template", "cutoff_len", "max_samples", "val_size", "packing",
             "train_on_prompt", "mask_history"),
    "finetuning": ("stage", "finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target"),
    "training": ("output_dir", "do_train", "learning_rate", "num_train_epochs", "max_steps",
                 "per_device_train_batch_size", "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps",
                 "optim", "max_grad_norm", "weight_decay", "fp16", "bf16", "logging_steps", "save_steps", "seed",
                 "report_to"),
    "generating": (),
    "export": (),
    "evaluation": (),
}
GROUP_TITLES = {
    "model": "model", "data": "data", "finetuning": "finetuning", "training": "training",
    "generating": "generating", "export": "export", "evaluation": "evaluation",
}

USAGE = """usage: tunelab check CONFIG.yaml [key=value ...] [--key value ...] [--all] [--portable]
       tunelab check --keys

Validate a configuration without loading any weights and print it resolved, grouped by section.
It runs every check `tunelab train` runs before it loads anything (devices, packages, files, the
model's config.json and tokenizer, the data registry) and lists every problem found, exit code 2.
Keys you set are marked *, values tunelab derived are marked + with the reason.
  --all       print every key of every section, defaults included
  --portable  skip the checks of this machine (devices, installed packages, the model folder), for a
              config written for another machine
  --keys      print every accepted key with its section, type and default"""


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    return repr(value) if isinstance(value, str) else str(value)


def render_config(config: Config, *, show_all: bool = False) -> str:
    from tunelab.config.groups import group_classes

    lines: list[str] = []
    for group in group_classes():
        values = config.group_values(group)
        if group == "training" and config._training is not None:  # None: transformers refused them, shown as given
            training = config.training
            values = {k: getattr(training, k) for k in config.training_values} | {
                k: getattr(training, k) for k in SHOWN_BY_DEFAULT["training"]
            }
            if show_all:
                import dataclasses

                values = {f.name: getattr(training, f.name) for f in dataclasses.fields(training) if f.init}
        keys = [k for k in values if show_all or k in config.explicit or k in config.derived
                or k in SHOWN_BY_DEFAULT[group]]
        if not keys:
            continue
        lines.append(f"[{GROUP_TITLES[group]}]")
        for key in keys:
            mark = "*" if key in config.explicit else ("+" if key in config.derived else " ")
            why = f"   # {config.derived[key][1]}" if key in config.derived else ""
            lines.append(f" {mark} {key}: {_show(values[key])}{why}")
    return "\n".join(lines)


def render_key_reference() -> str:
    from tunelab.config.coerce import describe
    from tunelab.config.groups import all_fields

    lines = []
    for key, declarations in sorted(all_fields().items()):
        d = declarations[0]
        groups = "/".join(x.group for x in declarations)
        lines.append(f"{key}  [{groups}]  {describe(d.hint)}  default={_show(d.default)}")
    return "\n".join(lines)


def training_argument_problems(config: Config) -> list[str]:
    """transformers' own checks of the TrainingArguments. The DeepSpeed file and the mixed precision are
    checked by tunelab.preflight (deepspeed need not be installed here; bf16 / fp16 against this machine),
    so transformers sees the values without them and they are put back."""
    import os

    from tunelab.config.training_build import build_training_arguments
    from tunelab.errors import UserError

    values = dict(config.training_values)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:  # a single process (or torchrun's parent): as train does
        values.pop("ddp_backend", None)
    deepspeed = values.pop("deepspeed", None)
    precision = {k: values.pop(k) for k in ("bf16", "fp16", "bf16_full_eval", "fp16_full_eval") if k in values}
    try:
        args = build_training_arguments(values)
    except UserError as error:
        return [error.message]
    for key, value in precision.items():
        setattr(args, key, value)
    if deepspeed:
        args.deepspeed = deepspeed
    config._training = args
    return []


def stage_problems(config: Config) -> None:
    """The training stage's own refusals (they live with the stage, in tunelab.train.stages; they raise)."""
    from tunelab.train.stages import room_of

    room_of(config.finetuning.stage).check_config(config)


def resume_problems(config: Config) -> list[str]:
    """The refusal `tunelab train` gives for an output_dir that holds checkpoints, without touching it."""
    from pathlib import Path

    from tunelab.train.run.resume import list_checkpoints

    values = config.training_values
    if not values.get("output_dir") or values.get("resume_from_checkpoint") is not None:
        return []
    checkpoints = list_checkpoints(Path(values["output_dir"]))
    if not checkpoints or values.get("overwrite_output_dir"):
        return []
    return [f"output_dir {values['output_dir']} already holds checkpoints (latest: {checkpoints[-1].name}). Choose "
            "one: resume_from_checkpoint: true to continue that run, or overwrite_output_dir: true to start afresh "
            "(or pick another output_dir)."]


def lock_problems(config: Config) -> list[str]:
    """A live run already training into output_dir (train/run/run_lock.py): a second one is refused."""
    from tunelab.train.run.run_lock import lock_problems as live_run_problems

    return live_run_problems(config.training_values.get("output_dir"))


def find_all_problems(config: Config, *, portable: bool = False, for_training: bool | None = None,
                      rows: bool = True) -> list[str]:
    """What `tunelab train` would refuse (`for_training`, by default when the config has do_train) or any
    command would (otherwise): the TrainingArguments, tunelab.preflight's checks (with the data `rows`),
    the stage's own."""
    from tunelab.preflight import find_problems

    if for_training is None:
        for_training = bool(config.training_values.get("do_train"))
    extra = (stage_problems, resume_problems, lock_problems) if for_training else ()
    return training_argument_problems(config) + find_problems(config, for_training=for_training, portable=portable,
                                                              rows=rows, extra_checks=extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv == ["--keys"]:
        print(render_key_reference())
        return 0
    show_all = "--all" in argv
    portable = "--portable" in argv
    argv = [a for a in argv if a not in ("--all", "--portable")]
    config, problems = read_config(argv)
    problems = list(dict.fromkeys(problems + find_all_problems(config, portable=portable)))
    print(render_config(config, show_all=show_all))
    raise_problems(problems, config.source_file)
    print("\nconfig OK: no weights were loaded" + (" (--portable: this machine was not checked)." if portable else "."))
    return 0
