"""`tunelab check cfg.yaml [overrides]`: validate a config without loading weights and print it resolved."""

from __future__ import annotations

import enum
from typing import Any

from tunelab.config.parser import parse_config

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

USAGE = """usage: tunelab check CONFIG.yaml [key=value ...] [--key value ...] [--all]
       tunelab check --keys

Validate a configuration without loading any weights and print it resolved, grouped by section.
Keys you set are marked *, values tunelab derived are marked + with the reason.
  --all    print every key of every section, defaults included
  --keys   print every accepted key with its section, type and default"""


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    return repr(value) if isinstance(value, str) else str(value)


def render_config(config: Any, *, show_all: bool = False) -> str:
    from tunelab.config.groups import group_classes

    lines: list[str] = []
    for group in group_classes():
        values = config.group_values(group)
        if group == "training":
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


def check_training_arguments(config: Any) -> None:
    """Run transformers' own checks; a DeepSpeed config is checked as a JSON file (deepspeed need not be installed)."""
    import json
    from pathlib import Path

    from tunelab.config.training_build import build_training_arguments
    from tunelab.errors import UserError

    values = dict(config.training_values)
    deepspeed = values.pop("deepspeed", None)
    if isinstance(deepspeed, str):
        path = Path(deepspeed)
        if not path.is_file():
            raise UserError(f"deepspeed: config file '{deepspeed}' does not exist.")
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise UserError(f"deepspeed: {deepspeed}:{error.lineno}: not valid JSON: {error.msg}") from None
    # Mixed precision is checked against the hardware at train time; a config written for a GPU
    # machine must still check here, so transformers sees it without bf16 / fp16 and they are put back.
    precision = {k: values.pop(k) for k in ("bf16", "fp16") if k in values}
    args = build_training_arguments(values)
    for key, value in precision.items():
        setattr(args, key, value)
    if deepspeed:
        args.deepspeed = deepspeed
    config._training = args


def check_template_and_data(config: Any) -> None:
    """The template name must be known and every data set registered, still without loading weights."""
    from tunelab.data.dataset_info import get_dataset_attrs, resolve_dataset_dir
    from tunelab.data.templates.registry import ALIASES, REGISTRY
    from tunelab.errors import UserError

    name = config.data.template
    if name and name != "auto" and ALIASES.get(name, name) not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UserError(f"template: unknown template '{name}'.{hint} See `tunelab template list`.")
    names = config.data.dataset_names() + config.data.eval_dataset_names()
    if names:
        get_dataset_attrs(names, resolve_dataset_dir(config.data.dataset_dir))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv == ["--keys"]:
        print(render_key_reference())
        return 0
    show_all = "--all" in argv
    argv = [a for a in argv if a != "--all"]
    config = parse_config(argv)
    check_training_arguments(config)
    check_template_and_data(config)
    print(render_config(config, show_all=show_all))
    print("\nconfig OK: no weights were loaded.")
    return 0
