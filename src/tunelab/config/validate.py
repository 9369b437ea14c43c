"""Contradictions between keys, refused before any weight loads, each with the reason and the fix."""

from __future__ import annotations

from tunelab.config.resolved import Config
from tunelab.config.stages import get_stage_spec, stages_where
from tunelab.errors import raise_problems


def validate_config(config: Config) -> None:
    """Refuse every contradiction at once: one ProblemList naming the file."""
    raise_problems(config_problems(config), config.source_file)


def config_problems(config: Config) -> list[str]:
    """Every contradiction between the keys of `config`, each with the reason and the fix."""
    problems: list[str] = []
    model, data, ft, training = config.model, config.data, config.finetuning, config.training_values
    if training.get("fp16") and training.get("bf16"):
        problems.append("fp16 and bf16 are both true; choose one mixed-precision mode (bf16 on GPUs that support it).")
    if model.quantization_bit is not None:
        if ft.finetuning_type != "lora":
            problems.append(
                f"quantization_bit={model.quantization_bit} with finetuning_type: {ft.finetuning_type}: quantized weights "
                "cannot be trained directly; use finetuning_type: lora (QLoRA) or drop quantization_bit.",
            )
        if model.quantization_bit not in (4, 8):
            problems.append(f"quantization_bit={model.quantization_bit}: bitsandbytes quantizes to 4 or 8 bits.")
        if config.export.export_dir is not None and model.adapter_name_or_path:
            problems.append(
                "quantization_bit with export_dir: adapters cannot be merged into a quantized model; "
                "drop quantization_bit to merge into the full-precision base.",
            )
    if model.adapter_name_or_path and ft.finetuning_type != "lora":
        problems.append(
            f"adapter_name_or_path is set but finetuning_type is {ft.finetuning_type}; adapters are LoRA weights: "
            "use finetuning_type: lora, or merge the adapter first with `tunelab export`.",
        )
    if data.mask_history and data.train_on_prompt:
        problems.append("mask_history and train_on_prompt are both true; mask_history trains the last turn only, "
                        "train_on_prompt trains every token. Choose one.")
    if data.neat_packing and data.packing is False:
        problems.append("neat_packing is true but packing is false; neat_packing is a kind of packing.")
    if data.padding_free and data.packing:
        problems.append("padding_free and packing are both true; packing already leaves no padding (rows of cutoff_len "
                        "tokens). Choose one: packing changes what a batch is, padding_free keeps batches of examples.")
    if data.padding_free and not get_stage_spec(ft.stage).padding_free:
        names = stages_where(lambda spec: spec.padding_free)
        stages = ", ".join(names[:-1]) + " and " + names[-1]
        problems.append(f"padding_free applies to stages {stages}; stage {ft.stage} pads its batches. "
                        "Remove padding_free.")
    if data.val_size > 0 and data.eval_dataset:
        problems.append("val_size and eval_dataset are both set; evaluate on a split of the training data or on "
                        "eval_dataset, not both.")
    probs = data.interleave_prob_values()
    if probs is not None:
        if data.mix_strategy == "concat":
            problems.append("interleave_probs is set but mix_strategy is concat; use mix_strategy: interleave_under or "
                            "interleave_over.")
        names = data.dataset_names()
        if names and len(names) != len(probs):
            problems.append(f"interleave_probs has {len(probs)} values but dataset names {len(names)} data sets.")
    if data.streaming and data.max_samples is not None:
        problems.append("max_samples cannot be used with streaming; the size of a stream is unknown.")
    if data.streaming and 0 < data.val_size < 1:
        problems.append(f"streaming needs an integer val_size (a number of examples), not {data.val_size}.")
    if ft.use_dora and ft.pissa_init:
        problems.append("use_dora and pissa_init are both true; peft cannot initialise DoRA with PiSSA. Choose one.")
    if ft.finetuning_type != "lora":
        lora_only = [k for k in ("use_dora", "use_rslora", "pissa_init", "create_new_adapter") if getattr(ft, k)]
        if lora_only or ft.loraplus_lr_ratio is not None:
            keys = ", ".join(lora_only + (["loraplus_lr_ratio"] if ft.loraplus_lr_ratio is not None else []))
            problems.append(f"{keys} only apply to finetuning_type: lora (it is {ft.finetuning_type}).")
    if ft.pref_loss in ("orpo", "simpo") and ft.ref_model:
        problems.append(f"pref_loss: {ft.pref_loss} uses no reference model, but ref_model is set; drop ref_model.")
    if training.get("do_train") and not data.dataset:
        problems.append("do_train is true but no dataset is given; add dataset: NAME (from dataset_info.json).")
    return problems


def training_problems(config: Config) -> list[str]:
    """The keys `tunelab train` needs that `config` does not set."""
    problems: list[str] = []
    if not config.model.model_name_or_path:
        problems.append("model_name_or_path is not set; give a local model folder or a hub id.")
    if not config.training_values.get("output_dir"):
        problems.append("output_dir is not set; add output_dir: saves/my-run (where checkpoints and logs go).")
    if not config.data.dataset:
        problems.append("dataset is not set; add dataset: NAME[,NAME] (names from dataset_info.json).")
    return problems
