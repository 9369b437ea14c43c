"""`tunelab train cfg.yaml [key=value ...] [--key value ...]`: fine-tune a model."""

from __future__ import annotations

USAGE = """usage: tunelab train CONFIG.yaml [key=value ...] [--key value ...]
       tunelab train --stage sft --do_train True --model_name_or_path PATH --dataset NAME ... --output_dir DIR

Fine-tune a model as the config says (stages pt and sft; finetuning_type full, freeze or lora).
Every key is listed in docs/config.md; `tunelab check` validates a config without loading weights."""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.config.parser import parse_config
    from tunelab.train.recipe import run_training

    run = run_training(parse_config(argv))
    print(f"training finished; outputs in {run.output_dir}")
    return 0
