"""THE RANGE TABLE: the valid interval of every numeric config key, and the check that applies it.

Typing (config/coerce.py) only proves a value is an int or a float; a learning rate of 0, 1e308 or inf,
a negative batch size or `gradient_accumulation_steps: 0` are numbers, and without this table they reach
transformers or torch as a NaN adapter, a ZeroDivisionError or a run of 0 steps. Every numeric field of
every argument group has one row here (tests/config/test_ranges.py fails on a field without one), so a
new key cannot skip the check. Values are always finite; integers are also at most INT_MAX (libraries
below hold them in 32 or 64 bits). Worker counts above this machine's CPU count are capped with a log
line rather than refused: a config written on a 64-core server still runs on a laptop.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger("tunelab.config")

INT_MAX = 2**31 - 1  # the largest integer a key accepts unless its row says otherwise
SEED_MAX = 2**32 - 1  # numpy's seeds (transformers.set_seed) are 32-bit unsigned


@dataclass(frozen=True)
class Range:
    """One key's valid values: `low` / `high` bounds (None: unbounded, `open` ones exclusive), plus
    `special` values accepted outside them with their meaning (max_steps: -1)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    example: str = ""
    special: tuple[tuple[float, str], ...] = ()
    whole_above_one: bool = False  # a fraction below 1, a whole count from 1 on (logging_steps, val_size)
    nonzero: bool = False  # freeze_trainable_layers: +n the last n layers, -n the first n
    capped_to_cpus: bool = False  # worker counts: above os.cpu_count() they are capped, with a log line

    def accepts(self, value: float, integer: bool) -> bool:
        if any(value == special for special, _ in self.special):
            return True
        if not math.isfinite(value) or (self.nonzero and value == 0):
            return False
        if self.whole_above_one and value > 1 and not float(value).is_integer():
            return False
        low, high = self.low, self._high(integer)
        if low is not None and (value <= low if self.low_open else value < low):
            return False
        return not (high is not None and (value >= high if self.high_open else value > high))

    def _high(self, integer: bool) -> float | None:
        """Counts (integers, whole numbers of steps) stop at INT_MAX unless the row says otherwise."""
        if self.high is None and (integer or self.whole_above_one):
            return INT_MAX
        return self.high

    def describe(self, integer: bool) -> str:
        """'an integer >= 1', '> 0 and <= 10, finite', with the special values and their meaning."""
        kind = "a nonzero integer" if self.nonzero else ("an integer" if integer else "")
        high = self._high(integer)
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {_num(high)}")
        text = " ".join(part for part in (kind, " and ".join(bounds)) if part)
        if not integer:
            text += " and finite" if bounds else "finite"
        if self.whole_above_one:
            text += " (a fraction below 1, a whole number from 1 on)"
        for special, meaning in self.special:
            text += f", or {_num(special)} ({meaning})"
        return text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else repr(value)


POSITIVE_INT = Range(low=1)
COUNT = Range(low=0)  # a number of things that may be none
SEED = Range(low=0, high=SEED_MAX, example="42")
FRACTION = Range(low=0, high=1)  # [0, 1]
PROBABILITY_OPEN = Range(low=0, high=1, high_open=True)  # [0, 1)
NON_NEGATIVE = Range(low=0)
POSITIVE = Range(low=0, low_open=True)
STEPS = Range(low=0, low_open=True, whole_above_one=True, example="500")
QUANTIZATION_BITS = Range(low=2, high=8, example="4")
WORKERS = Range(low=0, capped_to_cpus=True, example="4")
ANY_FINITE = Range()
WEIGHT = Range(low=0, high=1000)  # a loss weight or margin: past 1000 it only saturates the loss into NaN
POSITIVE_WEIGHT = Range(low=0, high=1000, low_open=True)


def _r(base: Range, example: str) -> Range:
    """`base` with its own example value."""
    from dataclasses import replace

    return replace(base, example=example)


#: key -> its range. A key declared in two groups (seed) has one row: one value sets both.
RANGES: dict[str, Range] = {
    # model
    "quantization_bit": QUANTIZATION_BITS,
    "moe_aux_loss_coef": _r(WEIGHT, "0.001"),
    "vllm_gpu_util": Range(low=0, high=1, low_open=True, example="0.9"),
    "vllm_maxlen": _r(POSITIVE_INT, "4096"),
    "vllm_max_lora_rank": _r(POSITIVE_INT, "32"),
    "image_max_pixels": _r(POSITIVE_INT, "589824"),
    "image_min_pixels": _r(POSITIVE_INT, "1024"),
    "video_max_pixels": _r(POSITIVE_INT, "65536"),
    "video_min_pixels": _r(POSITIVE_INT, "256"),
    "video_fps": _r(POSITIVE_WEIGHT, "2.0"),
    "video_maxlen": _r(POSITIVE_INT, "128"),
    "audio_sampling_rate": _r(POSITIVE_INT, "16000"),
    # data
    "cutoff_len": _r(POSITIVE_INT, "2048"),
    "max_samples": _r(POSITIVE_INT, "1000"),
    "val_size": Range(low=0, whole_above_one=True, example="0.1"),
    "buffer_size": _r(POSITIVE_INT, "16384"),
    "preprocessing_batch_size": _r(POSITIVE_INT, "1000"),
    "preprocessing_num_workers": Range(low=1, capped_to_cpus=True, example="4"),
    "eval_num_beams": _r(POSITIVE_INT, "1"),
    # finetuning
    "freeze_trainable_layers": Range(low=-INT_MAX, nonzero=True, example="2"),
    "lora_rank": _r(POSITIVE_INT, "8"),
    "lora_alpha": _r(POSITIVE_INT, "16"),
    "lora_dropout": _r(PROBABILITY_OPEN, "0.05"),
    "loraplus_lr_ratio": _r(POSITIVE_WEIGHT, "16"),
    "loraplus_lr_embedding": Range(low=0, high=10, low_open=True, example="1e-6"),
    "pissa_iter": Range(low=1, special=((-1, "exact SVD"),), example="16"),
    "pref_beta": _r(POSITIVE_WEIGHT, "0.1"),
    "pref_ftx": _r(WEIGHT, "0"),
    "pref_bco_weight": _r(WEIGHT, "0"),
    "dpo_label_smoothing": Range(low=0, high=0.5, example="0"),
    "simpo_gamma": _r(WEIGHT, "0.5"),
    "kto_chosen_weight": _r(POSITIVE_WEIGHT, "1.0"),
    "kto_rejected_weight": _r(POSITIVE_WEIGHT, "1.0"),
    "ld_alpha": _r(FRACTION, "0.5"),
    "ppo_buffer_size": _r(POSITIVE_INT, "1"),
    "ppo_epochs": _r(POSITIVE_INT, "4"),
    "ppo_target": _r(POSITIVE_WEIGHT, "6.0"),
    "num_generations": Range(low=2, example="8"),
    "max_completion_length": _r(POSITIVE_INT, "256"),
    "grpo_beta": _r(WEIGHT, "0.04"),
    "epsilon": _r(POSITIVE_WEIGHT, "0.2"),
    "ref_model_quantization_bit": QUANTIZATION_BITS,
    "reward_model_quantization_bit": QUANTIZATION_BITS,
    # training (transformers' TrainingArguments and tunelab's additions)
    "learning_rate": Range(low=0, high=10, low_open=True, example="1e-4"),
    "num_train_epochs": Range(low=0, high=INT_MAX, low_open=True, example="3"),
    "max_steps": Range(low=1, special=((-1, "no limit: num_train_epochs decides"),), example="1000"),
    "per_device_train_batch_size": _r(POSITIVE_INT, "8"),
    "per_device_eval_batch_size": _r(POSITIVE_INT, "8"),
    "gradient_accumulation_steps": _r(POSITIVE_INT, "8"),
    "eval_accumulation_steps": _r(POSITIVE_INT, "8"),
    "warmup_steps": Range(low=0, whole_above_one=True, example="0.1"),
    "weight_decay": Range(low=0, high=10, example="0.01"),
    "max_grad_norm": _r(NON_NEGATIVE, "1.0"),
    "adam_beta1": _r(PROBABILITY_OPEN, "0.9"),
    "adam_beta2": _r(PROBABILITY_OPEN, "0.999"),
    "adam_epsilon": Range(low=0, high=1, low_open=True, example="1e-8"),
    "label_smoothing_factor": _r(PROBABILITY_OPEN, "0.1"),
    "neftune_noise_alpha": _r(POSITIVE_WEIGHT, "5"),
    "logging_steps": _r(STEPS, "10"),
    "save_steps": _r(STEPS, "500"),
    "eval_steps": _r(STEPS, "500"),
    "eval_delay": _r(NON_NEGATIVE, "0"),
    "save_total_limit": _r(POSITIVE_INT, "3"),
    "torch_empty_cache_steps": _r(POSITIVE_INT, "100"),
    "seed": SEED,
    "data_seed": SEED,
    "dataloader_num_workers": WORKERS,
    "dataloader_prefetch_factor": _r(POSITIVE_INT, "2"),
    "ddp_timeout": _r(POSITIVE_INT, "1800"),
    "ddp_bucket_cap_mb": _r(POSITIVE_INT, "25"),
    "local_rank": Range(low=0, special=((-1, "not distributed"),), example="-1"),
    "generation_max_length": _r(POSITIVE_INT, "1024"),
    "generation_num_beams": _r(POSITIVE_INT, "1"),
    "max_nonfinite_steps": _r(COUNT, "10"),
    # generating
    "temperature": Range(low=0, high=100, example="0.95"),
    "top_p": Range(low=0, high=1, low_open=True, example="0.7"),
    "top_k": _r(COUNT, "50"),
    "num_beams": _r(POSITIVE_INT, "1"),
    "max_length": _r(POSITIVE_INT, "1024"),
    "max_new_tokens": _r(POSITIVE_INT, "1024"),
    "repetition_penalty": _r(POSITIVE_WEIGHT, "1.0"),
    "length_penalty": _r(ANY_FINITE, "1.0"),
    # export
    "export_size": _r(POSITIVE, "5"),
    "export_quantization_bit": QUANTIZATION_BITS,
    "export_quantization_nsamples": _r(POSITIVE_INT, "128"),
    "export_quantization_maxlen": _r(POSITIVE_INT, "1024"),
    # evaluation
    "n_shot": _r(COUNT, "5"),
    "batch_size": _r(POSITIVE_INT, "4"),
}


def range_text(key: str) -> str:
    """A key's range for the reference (docs/config.md), e.g. '> 0, <= 10', '>= 1 or -1'; '' without a row.
    INT_MAX and "finite" hold for every key, so the reference says them once, not per row."""
    spec = RANGES.get(key)
    if spec is None:
        return ""
    parts = []
    if spec.low is not None and spec.low != -INT_MAX:
        parts.append(f"{'>' if spec.low_open else '>='} {_num(spec.low)}")
    if spec.high is not None and spec.high != INT_MAX:
        parts.append(f"{'<' if spec.high_open else '<='} {_num(spec.high)}")
    text = ", ".join(parts) or "any"
    if spec.nonzero:
        text = "nonzero" if text == "any" else f"{text}, nonzero"
    if spec.whole_above_one:
        text += ", whole above 1"
    text += "".join(f" or {_num(special)}" for special, _ in spec.special)
    return text + (", at most the CPUs (capped)" if spec.capped_to_cpus else "")


def range_problem(key: str, value: object) -> str | None:
    """'learning_rate: 0.0 is out of range; it must be > 0 and <= 10 and finite (e.g. 1e-4)', or None
    when `value` (already typed) is in range, is None (unset), or is not a number (typing's business)."""
    spec = RANGES.get(key)
    if spec is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    integer = isinstance(value, int)
    if spec.accepts(value, integer):
        return None
    example = f" (e.g. {spec.example})" if spec.example else ""
    return f"{key}: {_shown(value)} is out of range; it must be {spec.describe(integer)}{example}."


def _shown(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:12]}...({len(text)} digits)"


def range_problems(values: Mapping[str, object], origins: Mapping[str, str]) -> dict[str, str]:
    """key -> its one message (prefixed with where it was set), for every value out of its range."""
    found: dict[str, str] = {}
    for key, value in values.items():
        problem = range_problem(key, value)
        if problem is not None:
            origin = origins.get(key)
            found[key] = f"{origin}: {problem}" if origin else problem
    return found


def cpu_count() -> int:
    """CPUs this process may use (its affinity, not the machine's total, in a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def capped_workers(values: Mapping[str, object]) -> dict[str, tuple[int, str]]:
    """key -> (the capped value, why) for every worker count above this machine's CPUs. Starting more
    workers than CPUs only adds memory and start-up time (100000 would try to fork them all)."""
    cpus = cpu_count()
    capped: dict[str, tuple[int, str]] = {}
    for key, spec in RANGES.items():
        value = values.get(key)
        if spec.capped_to_cpus and isinstance(value, int) and not isinstance(value, bool) and value > cpus:
            capped[key] = (cpus, f"{value} asked, more than the {cpus} CPUs of this machine: capped")
    return capped
