"""The one table from web UI fields to config keys.

Every input on the board is a row here: its component name, the config key(s) it writes, its kind,
default and choices, and when it applies (LoRA settings only with `finetuning_type: lora`, ...).
Generating the YAML, loading a YAML back into the fields and the unit tests all read this table,
so a field can never write a key the config parser does not know (tests check every key against
`tunelab.config.groups.all_fields()`).

Values the user did not set are never written: a field starts at the config's own default (a test
holds the table to `all_fields()`), and a field that is empty, or holds that default, leaves its key
out of the YAML, so the run gets exactly what `tunelab train` would give a config without the key.
Only the three picks a run cannot do without (model, template, data set) start with a value of their
own. Number boxes are text boxes: an empty box stays empty (a browser number input turns it into 0),
and text that is not a number is a `FieldError` naming the field instead of a key silently dropped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tunelab.config.stages import STAGE_NAMES, stage_reads
from tunelab.errors import UserError

Values = Mapping[str, Any]

FINETUNING_TYPES = ("lora", "freeze", "full")
QUANTIZATION_BITS = ("none", "4", "8")
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
PREF_LOSSES = ("sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo")
EXPORT_DTYPES = ("auto", "float16", "bfloat16", "float32")
INFER_DTYPES = ("auto", "float16", "bfloat16", "float32")

# Sections: which job (train / eval / export / chat) reads a field.
TOP, TRAIN, LORA, FREEZE, PREF, EVAL, EXPORT, CHAT = "top", "train", "lora", "freeze", "pref", "eval", "export", "chat"
JOB_SECTIONS: dict[str, tuple[str, ...]] = {
    "train": (TOP, TRAIN, LORA, FREEZE, PREF),
    "eval": (TOP, EVAL),
    "export": (TOP, EXPORT),
    "chat": (TOP, CHAT),
}
# Keys every job of a kind writes whatever the fields say (not user inputs, but still config keys).
FIXED_KEYS: dict[str, dict[str, Any]] = {
    "train": {"do_train": True, "plot_loss": True, "report_to": "none"},
    "eval": {},
    "export": {},
    "chat": {},
}


@dataclass(frozen=True)
class Field:
    """One input of the board.

    `keys` are the config keys it writes. `convert(value, values)` turns the component's value into
    those keys (default: `{keys[0]: value}`); either way a key that is empty or holds the config's
    default is left out (`field_to_config`). `default` is what a fresh board shows: the config's own
    default, or None for an empty box. `load(config)` is the inverse for "Load config". `when(values)`
    says whether it applies now.
    """

    name: str
    keys: tuple[str, ...]
    kind: str  # text | float | int | choice | multi | bool
    default: Any
    section: str
    choices: tuple[str, ...] = ()
    when: Callable[[Values], bool] | None = None
    convert: Callable[[Any, Values], dict[str, Any]] | None = None
    load: Callable[[Mapping[str, Any]], Any] | None = None


class FieldError(UserError):
    """A box holds text its field cannot take (`reason`: a key of the i18n table), shown next to the
    field and in the status line; nothing starts while one is left."""

    def __init__(self, field: str, raw: Any, reason: str) -> None:
        self.field, self.raw, self.reason = field, str(raw), reason
        super().__init__(self.in_lang("en"))

    def in_lang(self, lang: str) -> str:
        from tunelab.webui.i18n import text

        key = FIELDS_BY_NAME[self.field].keys[0]
        return f"{text(self.field, lang)} ({key}): '{self.raw}' {text(self.reason, lang)}"


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _number(name: str, value: Any, kind: str) -> int | float:
    """Number boxes hold text ('5e-5', '8'); values from code arrive as numbers."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise FieldError(name, value, "not_a_number") from None
    if math.isnan(number) or math.isinf(number):
        raise FieldError(name, value, "not_a_number")
    if kind == "int":
        if not number.is_integer():
            raise FieldError(name, value, "not_a_whole_number")
        return int(number)
    return number


def field_value(field: Field, value: Any) -> Any:
    """The typed value a field writes, or None when left empty. Raises FieldError for text that is
    not a number in a number box."""
    if _empty(value):
        return None
    if field.kind in ("int", "float"):
        return _number(field.name, value, field.kind)
    if field.kind == "multi":
        items = [value] if isinstance(value, str) else list(value)
        return ",".join(str(v).strip() for v in items if str(v).strip()) or None
    if field.kind == "text":
        return str(value).strip()
    return value


# ---- converters for the fields that are not one key = one value ----------------------------------

def _precision(value: Any, values: Values) -> dict[str, Any]:
    return {"bf16": True} if value == "bf16" else {"fp16": True} if value == "fp16" else {}


def _load_precision(config: Mapping[str, Any]) -> str:
    return "bf16" if config.get("bf16") else "fp16" if config.get("fp16") else "fp32"


def _quantization(value: Any, values: Values) -> dict[str, Any]:
    return {} if value in (None, "", "none") else {"quantization_bit": int(value)}


def _load_quantization(config: Mapping[str, Any]) -> str:
    bit = config.get("quantization_bit")
    return "none" if bit is None else str(bit)


def _trust_remote_code(value: Any, values: Values) -> dict[str, Any]:
    """Written only when ticked: the default (false) stays out of every generated config."""
    return {"trust_remote_code": True} if value else {}


def _export_quantization(value: Any, values: Values) -> dict[str, Any]:
    return {} if value in (None, "", "none") else {"export_quantization_bit": int(value)}


def _checkpoint(value: Any, values: Values) -> dict[str, Any]:
    """A trained run picked in the top bar: an adapter for LoRA, the model itself for full / freeze.

    What the folder holds decides when it can tell (an `adapter_config.json` is an adapter, a
    `config.json` without one a whole model), so a page reloaded with the default method still loads
    a full fine-tune right; otherwise the finetuning method decides."""
    if _empty(value):
        return {}
    from pathlib import Path

    paths = [value] if isinstance(value, str) else list(value)
    last = Path(paths[-1])
    if (last / "adapter_config.json").is_file():
        return {"adapter_name_or_path": ",".join(paths)}
    if (last / "config.json").is_file() or values.get("finetuning_type", "lora") != "lora":
        return {"model_name_or_path": paths[-1]}
    return {"adapter_name_or_path": ",".join(paths)}


def _load_checkpoint(config: Mapping[str, Any]) -> str | None:
    return config.get("adapter_name_or_path")


def _is_lora(values: Values) -> bool:
    return values.get("finetuning_type", "lora") == "lora"


def _is_freeze(values: Values) -> bool:
    return values.get("finetuning_type") == "freeze"


def _stage_reads(key: str) -> Callable[[Values], bool]:
    """The field applies when the chosen stage reads `key` (the stage table's keys)."""
    return lambda values: stage_reads(values.get("stage", "sft"), key)


def _f(name: str, kind: str, default: Any, section: str, key: str | None = None, **extra: Any) -> Field:
    return Field(name=name, keys=(key or name,), kind=kind, default=default, section=section, **extra)


FIELDS: tuple[Field, ...] = (
    # top bar: shared by every tab
    _f("model_name_or_path", "text", "tunelab/tiny-chat", TOP),
    _f("template", "choice", "chatml", TOP),
    _f("finetuning_type", "choice", "lora", TOP, choices=FINETUNING_TYPES),
    Field("checkpoint_path", ("adapter_name_or_path", "model_name_or_path"), "choice", None, TOP,
          convert=_checkpoint, load=_load_checkpoint),
    Field("quantization_bit", ("quantization_bit",), "choice", "none", TOP, QUANTIZATION_BITS,
          convert=_quantization, load=_load_quantization),
    Field("trust_remote_code", ("trust_remote_code",), "bool", False, TOP, convert=_trust_remote_code,
          load=lambda config: bool(config.get("trust_remote_code"))),
    # train tab
    _f("stage", "choice", "sft", TRAIN, choices=STAGE_NAMES),
    _f("dataset_dir", "text", "data", TRAIN),
    _f("dataset", "multi", ["identity"], TRAIN),
    _f("learning_rate", "float", 5e-5, TRAIN),
    _f("num_train_epochs", "float", 3.0, TRAIN),
    _f("max_steps", "int", -1, TRAIN),
    _f("max_samples", "int", None, TRAIN),
    Field("compute_type", ("bf16", "fp16"), "choice", "fp32", TRAIN, PRECISIONS, convert=_precision,
          load=_load_precision),
    _f("cutoff_len", "int", 2048, TRAIN),
    _f("per_device_train_batch_size", "int", 8, TRAIN),
    _f("gradient_accumulation_steps", "int", 1, TRAIN),
    _f("lr_scheduler_type", "choice", "linear", TRAIN, choices=SCHEDULERS),
    _f("max_grad_norm", "float", 1.0, TRAIN),
    _f("val_size", "float", 0.0, TRAIN),
    _f("warmup_steps", "float", 0, TRAIN),
    _f("logging_steps", "int", 500, TRAIN),
    _f("save_steps", "int", 500, TRAIN),
    _f("seed", "int", 42, TRAIN),
    _f("output_dir", "text", None, TRAIN),
    # LoRA settings
    _f("lora_rank", "int", 8, LORA, when=_is_lora),
    _f("lora_alpha", "int", None, LORA, when=_is_lora),
    _f("lora_dropout", "float", 0.0, LORA, when=_is_lora),
    _f("lora_target", "text", "all", LORA, when=_is_lora),
    _f("additional_target", "text", None, LORA, when=_is_lora),
    _f("loraplus_lr_ratio", "float", None, LORA, when=_is_lora),
    _f("use_rslora", "bool", False, LORA, when=_is_lora),
    _f("use_dora", "bool", False, LORA, when=_is_lora),
    _f("pissa_init", "bool", False, LORA, when=_is_lora),
    _f("create_new_adapter", "bool", False, LORA, when=_is_lora),
    # freeze settings
    _f("freeze_trainable_layers", "int", 2, FREEZE, when=_is_freeze),
    _f("freeze_trainable_modules", "text", "all", FREEZE, when=_is_freeze),
    _f("freeze_extra_modules", "text", None, FREEZE, when=_is_freeze),
    # preference settings: each shown for the stages that read it (dpo, kto)
    _f("pref_beta", "float", 0.1, PREF, when=_stage_reads("pref_beta")),
    _f("pref_ftx", "float", 0.0, PREF, when=_stage_reads("pref_ftx")),
    _f("pref_loss", "choice", "sigmoid", PREF, choices=PREF_LOSSES, when=_stage_reads("pref_loss")),
    _f("kto_chosen_weight", "float", 1.0, PREF, when=_stage_reads("kto_chosen_weight")),
    _f("kto_rejected_weight", "float", 1.0, PREF, when=_stage_reads("kto_rejected_weight")),
    # evaluate & predict tab (`tunelab eval`: a data set with generation metrics, or a benchmark task)
    _f("eval_dataset_dir", "text", "data", EVAL, key="dataset_dir"),
    _f("eval_dataset", "multi", None, EVAL),
    _f("task", "text", None, EVAL),
    _f("n_shot", "int", 5, EVAL),
    _f("lang", "choice", "en", EVAL, choices=("en", "zh")),
    _f("eval_cutoff_len", "int", 2048, EVAL, key="cutoff_len"),
    _f("eval_max_samples", "int", None, EVAL, key="max_samples"),
    _f("batch_size", "int", 4, EVAL),
    _f("eval_max_new_tokens", "int", 1024, EVAL, key="max_new_tokens"),
    _f("eval_top_p", "float", 0.7, EVAL, key="top_p"),
    _f("eval_temperature", "float", 0.95, EVAL, key="temperature"),
    _f("save_dir", "text", None, EVAL),
    # export tab
    _f("export_dir", "text", None, EXPORT),
    _f("export_size", "float", 5, EXPORT),
    _f("export_dtype", "choice", "auto", EXPORT, choices=EXPORT_DTYPES),
    _f("export_device", "choice", "cpu", EXPORT, choices=("cpu", "auto")),
    _f("export_legacy_format", "bool", False, EXPORT),
    Field("export_quantization_bit", ("export_quantization_bit",), "choice", "none", EXPORT, QUANTIZATION_BITS,
          convert=_export_quantization, load=lambda c: _load_quantization({"quantization_bit": c.get("export_quantization_bit")})),
    _f("export_hub_model_id", "text", None, EXPORT),
    # chat tab: how the model loads, and the generation defaults of its answers
    _f("infer_backend", "choice", "huggingface", CHAT, choices=("huggingface", "vllm")),
    _f("infer_dtype", "choice", "auto", CHAT, choices=INFER_DTYPES),
    _f("default_system", "text", None, CHAT),
    _f("max_new_tokens", "int", 1024, CHAT),
    _f("top_p", "float", 0.7, CHAT),
    _f("temperature", "float", 0.95, CHAT),
)

FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def fields_of(job: str) -> tuple[Field, ...]:
    sections = JOB_SECTIONS[job]
    return tuple(f for f in FIELDS if f.section in sections)


def defaults() -> dict[str, Any]:
    """Every field's starting value (what a fresh board shows)."""
    return {f.name: f.default for f in FIELDS}


@functools.lru_cache(maxsize=1)
def config_defaults() -> dict[str, Any]:
    """Each config key's own default (what a run gets when the YAML leaves the key out)."""
    from tunelab.config.groups import all_fields

    return {key: declarations[0].default for key, declarations in all_fields().items()}


def is_config_default(key: str, value: Any) -> bool:
    """True when writing `key: value` would change nothing (the key is left out instead)."""
    defaults_ = config_defaults()
    if key not in defaults_:
        return False
    default = defaults_[key]
    default = getattr(default, "value", default)  # enum defaults (lr_scheduler_type) compare by value
    if isinstance(default, bool) or isinstance(value, bool):  # True == 1, but `use_dora: true` is no number
        return value is default
    return value == default


def field_to_config(field: Field, value: Any, values: Values) -> dict[str, Any]:
    """The config keys one field writes for `value`: nothing when it does not apply, is empty or holds
    the config's default (so opening a group or leaving a box as it came writes no key)."""
    if field.when is not None and not field.when(values):
        return {}
    if field.convert is not None:
        written = field.convert(value, values)
    else:
        typed = field_value(field, value)
        written = {} if typed is None else {field.keys[0]: typed}
    return {key: v for key, v in written.items() if not is_config_default(key, v)}


def field_problems(values: Values, job: str | None = None) -> list[FieldError]:
    """Every box (of `job`'s fields; None: all) whose text its field cannot take, so one press names all."""
    problems: list[FieldError] = []
    for field in FIELDS if job is None else fields_of(job):
        if field.kind in ("int", "float"):
            try:
                field_value(field, values.get(field.name))
            except FieldError as error:
                problems.append(error)
    return problems


def config_to_fields(job: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inverse of the generation: (field values, keys no field of this job holds) for "Load config".

    Every field of the job gets a value: a key the file leaves out loads as the field's default, so the
    board then shows (and would run) exactly the loaded config, not a mix with what it showed before."""
    values: dict[str, Any] = {}
    used: set[str] = set(FIXED_KEYS[job])
    for field in fields_of(job):
        if field.load is not None:  # absent keys load as the field's "off" value (fp32, no quantization)
            values[field.name] = field.load(config)
            used.update(k for k in field.keys if k in config and k != "model_name_or_path")
            continue
        key = field.keys[0]
        value = config.get(key, field.default)
        if key in config:
            used.add(key)
        if field.kind == "multi" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        values[field.name] = value
    extra = {k: v for k, v in config.items() if k not in used}
    return values, extra
