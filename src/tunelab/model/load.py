"""Loads the tokenizer and the causal LM a config names, with clear messages for what goes wrong.

Hub ids still work for users online; offline, or for a path that does not exist, the error names
the model and says which of the two it looked for.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from tunelab.config.model_args import ModelArguments
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.model")


def resolve_model_path(name_or_path: str | None, *, weights: bool = True) -> str:
    """A local folder, a built-in tiny model (`tunelab/...`) built on first use, or a hub id; a checkpoint of
    a remote-code family tunelab knows (docs/models.md) becomes its cached native folder, converted on first
    use (`weights=False`: config and tokenizer only, what `tunelab check` reads)."""
    if not name_or_path:
        raise UserError("model_name_or_path is not set; give a local model folder or a hub id.")
    from tunelab.model.builtin import is_builtin, materialize_builtin
    from tunelab.model.legacy import resolve_native

    if is_builtin(name_or_path):
        return str(materialize_builtin(name_or_path))
    if Path(name_or_path).is_dir():  # a folder tunelab wrote (an export) is loaded only when complete
        from tunelab.utils.publish import check_folder

        check_folder(Path(name_or_path), "the model folder")
    return resolve_native(name_or_path, weights=weights)


def hub_kwargs(args: ModelArguments) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": args.trust_remote_code, "revision": args.model_revision}
    if args.cache_dir:
        kwargs["cache_dir"] = args.cache_dir
    if args.hf_hub_token:
        kwargs["token"] = args.hf_hub_token
    return kwargs


_HUB_HINTS = re.compile(r"[^.\n]*https://(?:hf\.co|huggingface\.co)/\S*[^\n]*\n?")


def _load_error(kind: str, path: str, error: Exception) -> UserError:
    text = str(error)
    if "trust_remote_code" in text:
        return UserError(f"model_name_or_path '{path}' ships its own {kind} code; set trust_remote_code: true if you "
                         "trust that code (it runs on this machine).")
    if Path(path).exists():
        local = _HUB_HINTS.sub("", text).strip()  # a local folder: transformers' hub links would be wrong
        return UserError(f"could not load the {kind} from '{path}': {local}")
    if path.startswith((".", "/", "~")) or path.count("/") > 1:
        return UserError(f"model_name_or_path '{path}' is not an existing folder. Check the path.")
    return UserError(
        f"could not load the {kind} '{path}': it is not a local folder and the hub could not provide it "
        f"(offline, or a wrong id). Download it first (e.g. `hf download {path} --local-dir models/x`) and "
        f"set model_name_or_path to that folder. Cause: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    )


def _sorted_error(kind: str, path: str, error: Exception) -> Exception:
    """A loading failure as the user's problem (UserError, exit 2) when it is one: a wrong path or hub id,
    or the checkpoint's own code failing (remote_code.py); anything else is tunelab's and keeps its traceback."""
    from tunelab.model.remote_code import remote_code_error

    remote = remote_code_error(kind, path, error)
    if remote is not None:
        return remote
    if isinstance(error, (OSError, ValueError)):
        return _load_error(kind, path, error)
    return error


def load_tokenizer(args: ModelArguments, model_path: str | None = None) -> Any:
    """Load the tokenizer, add requested tokens, and make sure a pad token exists (logged)."""
    from transformers import AutoTokenizer

    path = model_path or resolve_model_path(args.model_name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=args.use_fast_tokenizer, **hub_kwargs(args))
    except Exception as error:  # noqa: BLE001 - sorted below: a user's path, the model's own code, or ours
        raise _sorted_error("tokenizer", path, error) from None
    special = args.special_tokens_to_add()
    if special:
        added = add_special_tokens(tokenizer, special)
        logger.info("added %d special token(s) to the tokenizer: %s", added, ", ".join(special))
    if args.add_tokens:
        tokens = [t.strip() for t in args.add_tokens.split(",") if t.strip()]
        added = tokenizer.add_tokens(tokens)
        logger.info("added %d token(s) to the tokenizer: %s", added, ", ".join(tokens))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("the tokenizer has no pad token: using its eos token %r for padding", tokenizer.eos_token)
    return tokenizer


def add_special_tokens(tokenizer: Any, tokens: list[str]) -> int:
    """Add `tokens` as special tokens, keeping the ones the tokenizer has (transformers 5 calls them extra
    special tokens; `additional_special_tokens` / `replace_additional_special_tokens` are gone)."""
    return tokenizer.add_special_tokens({"extra_special_tokens": tokens}, replace_extra_special_tokens=False)


def torch_dtype_for(training_values: dict[str, Any], infer_dtype: str = "auto") -> Any:
    """Weight dtype: bf16 / fp16 when the run asks for it, float32 otherwise (CPU-safe)."""
    import torch

    if training_values.get("bf16"):
        return torch.bfloat16
    if training_values.get("fp16"):
        return torch.float16
    if infer_dtype != "auto":
        return getattr(torch, infer_dtype)
    return torch.float32


def load_model(
    args: ModelArguments,
    tokenizer: Any,
    *,
    dtype: Any,
    model_path: str | None = None,
    for_training: bool = True,
    quantization_config: Any = None,
) -> Any:
    """Load the causal LM (or multimodal model) with the chosen attention and dtype; resize embeddings when tokens were added."""
    import torch
    from transformers import AutoConfig

    from tunelab.model.attention import attention_implementation

    path = model_path or resolve_model_path(args.model_name_or_path)
    try:
        config = AutoConfig.from_pretrained(path, **hub_kwargs(args))
    except Exception as error:  # noqa: BLE001 - sorted by _sorted_error
        raise _sorted_error("model", path, error) from None
    auto_class = model_class(config)
    if args.rope_scaling:
        config.rope_scaling = {"type": args.rope_scaling, "rope_type": args.rope_scaling, "factor": 2.0}
        logger.info("rope_scaling = %s with factor 2.0", args.rope_scaling)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": dtype,
        "attn_implementation": attention_implementation(args.flash_attn, torch.cuda.is_available()),
        "low_cpu_mem_usage": args.low_cpu_mem_usage,
        **hub_kwargs(args),
    }
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        if args.train_from_scratch:
            model = auto_class.from_config(config, dtype=dtype, trust_remote_code=args.trust_remote_code)
            logger.info("train_from_scratch: the weights are randomly initialised")
        else:
            model = _from_pretrained(auto_class, path, kwargs, args.flash_attn)
    except Exception as error:  # noqa: BLE001 - sorted by _sorted_error
        raise _sorted_error("model", path, error) from None
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        if not (args.resize_vocab or args.special_tokens_to_add() or args.add_tokens):
            raise UserError(
                f"the tokenizer has {len(tokenizer)} tokens but the model's embedding has {vocab} rows; "
                "set resize_vocab: true to grow the embeddings."
            )
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
        logger.info("resized the embeddings from %d to %d rows", vocab, model.get_input_embeddings().weight.shape[0])
    if for_training:
        model.config.use_cache = False
    return model


def model_class(config: Any) -> Any:
    """The transformers auto class of a config: a multimodal family's own (model/multimodal.py), else the
    causal LM one."""
    import transformers

    from tunelab.model.multimodal import multimodal_family

    family = multimodal_family(getattr(config, "model_type", None))
    return getattr(transformers, family.auto_class if family else "AutoModelForCausalLM")


def _from_pretrained(auto_class: Any, path: str, kwargs: dict[str, Any], flash_attn: str) -> Any:
    """`from_pretrained`; with `flash_attn: auto`, a model that does not support the attention chosen (remote
    code often supports eager only) falls back to eager, as transformers itself does when none is asked for."""
    try:
        return auto_class.from_pretrained(path, **kwargs)
    except ValueError as error:
        chosen = kwargs["attn_implementation"]
        if flash_attn != "auto" or chosen == "eager" or "does not support" not in str(error):
            raise
        logger.info("flash_attn = auto: the model does not support %s attention; using eager attention", chosen)
        return auto_class.from_pretrained(path, **{**kwargs, "attn_implementation": "eager"})
