"""One record per remote-code model family tunelab loads natively (issue 25).

The tutorials' models (ChatGLM3, Qwen-1, Baichuan2, Yuan2, TeleChat2) ship Python files written for
transformers 4.x that break on 5.x. tunelab does not run that code: it recognises the checkpoint from its
config.json, converts the weights once into a maintained architecture's layout (or into a class of its own,
where no transformers architecture is exactly equivalent) and builds a fast tokenizer with the original
ids. A family is this frozen record; `tunelab.model.legacy` holds the registry and the conversion cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: a state dict: parameter name -> tensor (torch.Tensor; typed loosely so this module imports no torch)
StateDict = dict[str, Any]
#: a config.json as a dict
ConfigDict = dict[str, Any]


@dataclass(frozen=True)
class LegacyFamily:
    """How one family's original checkpoint becomes a native one, and back.

    name:            registry key, also the folder name of its oracle fixture (`legacy_reference/<name>.json`)
    display:         what the user reads in logs and docs ("Qwen-1 (Qwen-7B / 14B / 1.8B, -Chat)")
    matches:         original config.json -> whether it is this family (model_type / architectures / auto_map)
    native:          what it loads as, for logs and docs ("transformers Qwen2ForCausalLM", "tunelab ...")
    native_config:   original config.json -> the native config.json (no weights needed: `check` uses it)
    to_native:       (original weights, original config) -> native weights
    to_original:     (native weights, original config) -> original weights (`export_format: original`)
    build_tokenizer: original folder -> a PreTrainedTokenizerFast with the original ids, special tokens included
    lora_targets:    the family's own module names -> the native names (`lora_target: W_pack`)
    conversion:      one line per thing that is converted, for the log and docs/models.md
    register:        for a tunelab-implemented family: registers its classes with transformers' Auto classes
    code_file:       for a tunelab-implemented family: the module file written next to a native export, so
                     plain transformers loads it (auto_map, trust_remote_code)
    warnings:        native config.json -> what a user must know about this checkpoint's behaviour, logged as
                     warnings each time it loads (a surprise the original code had too, kept for parity)
    """

    name: str
    display: str
    matches: Callable[[Mapping[str, Any]], bool]
    native: str
    native_config: Callable[[Mapping[str, Any]], ConfigDict]
    to_native: Callable[[Mapping[str, Any], Mapping[str, Any]], StateDict]
    to_original: Callable[[Mapping[str, Any], Mapping[str, Any]], StateDict]
    build_tokenizer: Callable[[Path], Any]
    lora_targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    conversion: tuple[str, ...] = ()
    register: Callable[[], None] | None = None
    code_file: Path | None = None
    warnings: Callable[[Mapping[str, Any]], list[str]] | None = None
