"""The training recipe for every stage, top to bottom: setup → train → save → evaluate → predict.

Read this file to know what `tunelab train cfg.yaml` does; each step is one call into a module
that does one thing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tunelab.config.resolved import Config
from tunelab.errors import UserError
from tunelab.preflight import preflight

logger = logging.getLogger("tunelab.train")


@dataclass
class TrainingRun:
    """What a finished run produced (for tests and for callers such as the web UI)."""

    output_dir: Path
    metrics: dict[str, Any]
    model: Any
    tokenizer: Any
    template: Any


def _training_values(config: Config) -> dict[str, Any]:
    """The TrainingArguments tunelab passes, with the few values it must set itself (each logged)."""
    from tunelab.config.hardware import cpu_precision_values

    values = cpu_precision_values(config.training_values)  # bf16 on a CPU with native bf16: use_cpu (logged)
    if values.get("ddp_backend") and int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        logger.info("ddp_backend = %s ignored: this run is a single process", values.pop("ddp_backend"))
    if config.finetuning.disable_shuffling:
        values["train_sampling_strategy"] = "sequential"
        logger.info("disable_shuffling: the training data is read in order (train_sampling_strategy = sequential)")
    values["remove_unused_columns"] = False  # packed rows carry segment lengths the model must not see
    values["include_num_input_tokens_seen"] = "no"  # counted exactly by TunelabTrainer instead
    values.setdefault("label_names", ["labels"])
    if config.model.disable_gradient_checkpointing:
        values["activation_checkpointing"] = False
    if values.get("activation_checkpointing"):
        values.setdefault("activation_checkpointing_kwargs", {"use_reentrant": config.model.use_reentrant_gc})
    logging_dir = values.pop("logging_dir", None)
    if logging_dir:
        os.environ["TENSORBOARD_LOGGING_DIR"] = logging_dir  # transformers 5 reads the TensorBoard folder from here
        logger.info("TensorBoard events go to %s (logging_dir)", logging_dir)
    return values


def run_training(config: Config) -> TrainingRun:
    """Run the recipe with SIGINT / SIGTERM handled in every phase (train/run/interrupt.py)."""
    from tunelab.train.run.interrupt import (
        InterruptCallback,
        Interrupted,
        interrupted_outside_training,
        stop_on_signals,
    )
    from tunelab.train.stages import room_of

    interrupt = InterruptCallback()
    try:
        with stop_on_signals(interrupt):
            room = room_of(config.finetuning.stage)  # the stage's module: its check, collator and Trainer
            preflight(config, extra_checks=[room.check_config])  # every problem at once, as `tunelab check` lists them
            with _output_dir_lock(config):  # after the checks: a refused config creates no folder
                return _run_training(config, interrupt, room)
    except Interrupted as interrupted:
        output_dir = str(config.training_values.get("output_dir", "."))
        raise interrupted_outside_training(interrupted, output_dir, interrupt.final_saved) from None


def _output_dir_lock(config: Config) -> Any:
    """One run per output folder (train/run/run_lock.py); rank 0 holds it for the whole distributed run."""
    import contextlib

    from tunelab.train.launch import is_main_process
    from tunelab.train.run.run_lock import holding

    output_dir = config.training_values.get("output_dir")
    return holding(output_dir) if output_dir and is_main_process() else contextlib.nullcontext()


def _run_training(config: Config, interrupt: Any, room: ModuleType) -> TrainingRun:
    import transformers

    from tunelab.data.templates import get_template
    from tunelab.data.templates.drift import warn_on_drift
    from tunelab.model.liger import apply_liger_kernels, liger_installed, resolve_liger
    from tunelab.model.load import load_model, load_tokenizer, resolve_model_path, torch_dtype_for
    from tunelab.model.processor import load_media_encoding
    from tunelab.model.quantization import quantization_config
    from tunelab.model.tuning import apply_tuning
    from tunelab.train.data_prep import prepare_data
    from tunelab.train.run.atomic_publish import save_final_model
    from tunelab.train.run.guards import NonFiniteGuard
    from tunelab.train.run.interrupt import SAVING, TRAINING, stopped
    from tunelab.train.run.outputs import write_resolved_config
    from tunelab.train.run.resume import check_same_run, resolve_resume, run_record
    from tunelab.train.run.trainer_log import TrainerLogCallback

    # 1. setup: everything that can fail on the user's input failed in preflight, before weights load
    values = _training_values(config)
    output_dir = values["output_dir"]
    checkpoint = resolve_resume(output_dir, values.pop("resume_from_checkpoint", None),
                                bool(values.get("overwrite_output_dir")))
    from tunelab.config.training_build import build_training_arguments

    args = build_training_arguments(values)
    if args.do_predict and args.world_size > 1:
        raise UserError("do_predict runs in one process; run it without torchrun (a separate `tunelab train` with "
                        "do_train: false, do_predict: true) after training.")
    check_output_dir(output_dir)
    transformers.set_seed(args.seed)
    interrupt.phase = "loading the tokenizer"
    model_path = resolve_model_path(config.model.model_name_or_path)
    tokenizer = load_tokenizer(config.model, model_path)
    media = load_media_encoding(config.model, model_path, tokenizer)  # None for a text-only model
    template = get_template(config.data.template, tokenizer, tool_format=config.data.tool_format,
                            default_system=config.data.default_system)
    warn_on_drift(template, tokenizer, config.data, where="training", model=config.model.model_name_or_path)
    dtype = torch_dtype_for(values, config.model.infer_dtype)
    config.model.enable_liger_kernel = resolve_liger(config.model.enable_liger_kernel, cuda_available=cuda_available(),
                                                     installed=liger_installed())
    quantization = quantization_config(config.model, dtype)
    interrupt.phase = "tokenizing the data"
    with args.main_process_first(local=True, desc="tokenizing the data"):  # one rank builds the cache, the rest reuse it
        prepared = prepare_data(config, tokenizer, template, media)
    if args.do_train:
        check_some_step(prepared.train, args)
    record = run_record(config, args, tokenizer) if args.do_train else None  # stamped on every checkpoint
    if checkpoint is not None and record is not None:
        check_same_run(Path(checkpoint), record)  # the same configuration and data, or refused by name
    if args.should_save:  # rank 0 only under torchrun: one process writes the run's outputs
        write_resolved_config(config, output_dir)

    # 2. model: weights, then the tuning method that decides what trains
    interrupt.phase = "loading the model"
    model = load_model(config.model, tokenizer, dtype=dtype, model_path=model_path, quantization_config=quantization)
    if config.model.enable_liger_kernel:
        apply_liger_kernels(model)
    if args.do_train and _activation_checkpointing(config, values, args, model):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.activation_checkpointing_kwargs)
        model.enable_input_require_grads()
    model = apply_tuning(model, config.finetuning, config.model, is_trainable=bool(args.do_train))
    pissa_init_dir = None
    if args.do_train:
        check_disk_space(output_dir, model, full_weights=config.finetuning.finetuning_type != "lora")
    if config.finetuning.pissa_init and config.finetuning.pissa_convert and args.do_train:
        pissa_init_dir = Path(output_dir) / "pissa_init"
        if args.should_save:
            model.save_pretrained(pissa_init_dir)

    # 3. train
    trainer = room.Trainer(
        model=model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
        data_collator=room.make_collator(prepared, tokenizer, model, config), processing_class=tokenizer,
        callbacks=[NonFiniteGuard(args.max_nonfinite_steps), TrainerLogCallback(output_dir), interrupt],
        config=config,
    )  # fmt: skip
    trainer.run_record = record
    metrics: dict[str, Any] = {}
    if args.do_train:
        interrupt.phase = TRAINING
        result = _train(trainer, checkpoint, interrupt)
        interrupt.phase = SAVING
        save_final_model(trainer, model, tokenizer, template, output_dir, pissa_init_dir,
                         processor=media.processor if media is not None else None)
        interrupt.final_saved = True
        train_metrics = dict(result.metrics)
        train_metrics["num_input_tokens_seen"] = trainer.state.num_input_tokens_seen
        train_metrics["num_untrained_examples"] = prepared.untrained  # left out: no trained token (named in the log)
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
        metrics.update(train_metrics)
        if interrupt.signal_number is not None:  # received in the last step or during the final save
            raise stopped(interrupt.signal_number, f"at step {trainer.state.global_step}, the last: training finished "
                                                   f"and the final model is saved in {output_dir}; evaluation and "
                                                   "prediction were skipped.")

    # 4. evaluate and predict
    interrupt.phase = "evaluating"
    if prepared.eval is not None and (args.do_eval or args.do_train):
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    if args.do_predict:
        interrupt.phase = "predicting"
        metrics.update(_predict(config, trainer.model, tokenizer, template, output_dir))
    if config.finetuning.plot_loss and args.do_train and args.should_save:
        from tunelab.train.run.plot import plot_losses

        plot_losses(output_dir)
    return TrainingRun(Path(output_dir), metrics, trainer.model, tokenizer, template)


def _activation_checkpointing(config: Config, values: dict[str, Any], args: Any, model: Any) -> bool:
    """The user's choice when given; otherwise the memory rule of model/activation_memory.py (logged)."""
    from tunelab.model.activation_memory import choose_checkpointing

    if "activation_checkpointing" in values or config.model.disable_gradient_checkpointing:
        if args.activation_checkpointing:
            logger.info("activation checkpointing on (activation_checkpointing: true): activations are recomputed")
        return bool(args.activation_checkpointing)
    decision = choose_checkpointing(model, batch_size=args.per_device_train_batch_size, cutoff_len=config.data.cutoff_len,
                                    full_weights_train=config.finetuning.finetuning_type != "lora",
                                    device_is_cuda=cuda_available())
    state = "on" if decision.enabled else "off"
    logger.info("activation checkpointing %s (default rule: %s; set activation_checkpointing to choose)",
                state, decision.reason())
    if decision.enabled:
        args.activation_checkpointing_kwargs = args.activation_checkpointing_kwargs or {
            "use_reentrant": config.model.use_reentrant_gc}
    return decision.enabled


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _train(trainer: Any, checkpoint: str | None, interrupt: Any) -> Any:
    """trainer.train() with a signal turned into a clean stop and out-of-memory into a clear message.

    A signal received in the last step does not stop the run here: training is complete, and the
    recipe saves the final model before it reports the signal."""
    import torch

    from tunelab.train.run.guards import out_of_memory_error
    from tunelab.train.run.interrupt import stopped

    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except torch.OutOfMemoryError as error:
        raise out_of_memory_error(error) from None
    step = trainer.state.global_step
    if interrupt.signal_number is not None and step < trainer.state.max_steps:
        raise stopped(interrupt.signal_number, f"at step {step}; checkpoint saved to "
                                               f"{Path(trainer.args.output_dir) / f'checkpoint-{step}'}. Continue "
                                               "with resume_from_checkpoint: true.")
    return result


def check_output_dir(output_dir: str) -> None:
    """Refuse an output_dir that cannot be written before any time is spent."""
    import tempfile

    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tunelab-write-test-"):
            pass
    except OSError as error:
        raise UserError(f"output_dir {path} is not writable ({error.strerror or error}); choose another "
                        "output_dir or fix its permissions.") from None


def check_some_step(train: Any, args: Any) -> None:
    """A run that would take no optimizer step is refused: transformers "trains" 0 steps and reports success.
    That happens when `dataloader_drop_last` drops the only, incomplete batch (fewer rows per process than
    per_device_train_batch_size); an empty data set is refused earlier, by the data loaders."""
    if not args.dataloader_drop_last or not hasattr(train, "__len__"):
        return  # without drop_last every row is in some batch; a stream has no length to check
    rows, batch = len(train), args.per_device_train_batch_size * max(args.world_size, 1)
    if rows < batch:
        raise UserError(f"dataloader_drop_last: true drops the only batch: the training set has {rows} rows, fewer "
                        f"than one batch of {batch} (per_device_train_batch_size x processes), so no step would "
                        "train. Lower per_device_train_batch_size, add data, or drop dataloader_drop_last.")


def check_disk_space(output_dir: str, model: Any, *, full_weights: bool) -> None:
    """Refuse to start when output_dir's disk cannot hold one checkpoint (weights + optimizer state)."""
    import shutil

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    saved = sum(p.numel() * p.element_size() for p in model.parameters()) if full_weights else trainable * 4
    needed = saved + trainable * 4 * 2  # two AdamW moments in float32
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise UserError(f"output_dir {output_dir}: {free / 2**30:.2f} GiB free, but one checkpoint needs about "
                        f"{needed / 2**30:.2f} GiB; free disk space or choose another output_dir.")


def _predict(config: Config, model: Any, tokenizer: Any, template: Any, output_dir: str) -> dict[str, Any]:
    from tunelab.config.stages import DataKind, stage_reading
    from tunelab.data.loader import load_splits
    from tunelab.train.predict import predict

    if not config.training_values.get("predict_with_generate"):
        raise UserError("do_predict needs predict_with_generate: true (tunelab predicts by generating answers).")
    splits = load_splits(config.data, stage_reading(DataKind.CHAT), seed=int(config.training_values.get("seed", 42)))
    examples = splits.eval if splits.eval else splits.train
    if isinstance(examples, dict):
        examples = [e for part in examples.values() for e in part]
    return predict(model, tokenizer, template, list(examples), config, output_dir)
