"""Keys that choose and shape the data: the anchor's names, meanings and defaults, plus a few of tunelab's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DataArguments:
    """Which data sets to load and how to turn them into token sequences."""

    template: str | None = field(
        default=None,
        metadata={"help": "Chat template name (see `tunelab template list`); empty or `auto` uses the tokenizer's own chat template."},
    )
    check_template: bool = field(
        default=True,
        metadata={"help": "tunelab: warn once when a named template writes conversations differently from the model's "
                          "own chat template (training, chat / api, export); false silences it."},
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Training data set name(s) from dataset_info.json, comma separated."}
    )
    eval_dataset: str | None = field(
        default=None, metadata={"help": "Evaluation data set name(s) from dataset_info.json, comma separated."}
    )
    dataset_dir: str = field(
        default="data",
        metadata={"help": "Folder holding dataset_info.json and the data files; tunelab's bundled demo data is used when `data` does not exist."},
    )
    media_dir: str | None = field(
        default=None, metadata={"help": "Folder of images / videos / audios named in the data. Defaults to `dataset_dir`."}
    )
    cutoff_len: int = field(default=2048, metadata={"help": "Maximum number of tokens of one encoded example."})
    train_on_prompt: bool = field(default=False, metadata={"help": "Also train on the prompt tokens (no -100 mask)."})
    mask_history: bool = field(
        default=False, metadata={"help": "Train on the last assistant turn only; earlier turns are masked."}
    )
    streaming: bool = field(default=False, metadata={"help": "Stream the data sets instead of loading them fully."})
    buffer_size: int = field(default=16384, metadata={"help": "Shuffle buffer size when streaming."})
    mix_strategy: Literal["concat", "interleave_under", "interleave_over", "interleave_once"] = field(
        default="concat",
        metadata={"help": "How several data sets are mixed: concat, or interleave until the first (under) / last (over) is exhausted, or each once."},
    )
    interleave_probs: str | None = field(
        default=None, metadata={"help": "Sampling probabilities for interleaved mixing, comma separated, one per data set."}
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Rebuild the tokenized-data cache."})
    preprocessing_batch_size: int = field(default=1000, metadata={"help": "Examples per batch during tokenization."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes used for tokenization."})
    max_samples: int | None = field(default=None, metadata={"help": "Keep at most this many examples of each data set."})
    eval_num_beams: int | None = field(default=None, metadata={"help": "Beams for generation during evaluation."})
    ignore_pad_token_for_loss: bool = field(default=True, metadata={"help": "Ignore pad tokens in the loss."})
    val_size: float = field(
        default=0.0, metadata={"help": "Validation split: a fraction in [0, 1) or a number of examples (>= 1)."}
    )
    eval_on_each_dataset: bool = field(default=False, metadata={"help": "Evaluate on each eval data set separately."})
    packing: bool | None = field(
        default=None,
        metadata={"help": "Pack several examples into one row of `cutoff_len` tokens (fewer, fuller rows; a row counts "
                          "as one example of the batch size). Default: on for pt, off for sft."},
    )
    padding_free: bool | None = field(
        default=None,
        metadata={"help": "Batch without padding: each batch's examples share rows, attention never crosses them, "
                          "and a batch still holds per_device_train_batch_size examples. Default: on for sft, rm, dpo, "
                          "kto, and pt when packing is off."},
    )
    neat_packing: bool = field(
        default=False, metadata={"help": "Packing without attention across examples (always the case in tunelab)."}
    )
    tool_format: str | None = field(default=None, metadata={"help": "Tool-call format; defaults to the template's."})
    default_system: str | None = field(
        default=None, metadata={"help": "System prompt used when an example has none; overrides the template's default."}
    )
    enable_thinking: bool | None = field(
        default=True, metadata={"help": "For reasoning templates: train / infer with a thinking block."}
    )
    tokenized_path: str | None = field(
        default=None,
        metadata={"help": "Save the tokenized data sets here, or load them from here when the folder exists."},
    )
    skip_invalid: bool = field(
        default=False,
        metadata={"help": "tunelab: drop invalid examples (and report how many) instead of stopping before training."},
    )

    def dataset_names(self) -> list[str]:
        return _split(self.dataset)

    def eval_dataset_names(self) -> list[str]:
        return _split(self.eval_dataset)

    def interleave_prob_values(self) -> list[float] | None:
        if self.interleave_probs is None:
            return None
        return [float(p) for p in _split(self.interleave_probs)]


def _split(value: str | None) -> list[str]:
    if not value:
        return []
    return [item.strip() for item in str(value).split(",") if item.strip()]
