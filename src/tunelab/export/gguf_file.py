"""GGUF for llama.cpp and Ollama, written from an exported folder with the `gguf` package.

Covers the `llama` and `qwen2` architectures with byte-level BPE tokenizers (Llama 3, Qwen2/2.5,
DeepSeek-V3 style), in f16 or f32, following llama.cpp's convert_hf_to_gguf.py: its tensor names
(via gguf's TensorNameMap), its metadata keys, the Q/K row permutation llama.cpp's llama rope expects,
1-D tensors (norms, biases) kept in f32, Llama 3.1 rope factors as `rope_freqs.weight`, and the
pre-tokenizer name llama.cpp uses to split text. `add_bos_token` / `add_eos_token` are always written, from
the tokenizer and the trained template, and agree with the Modelfile. What it cannot convert faithfully
it refuses.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunelab.data.templates.base import Template
from tunelab.errors import UserError, require_package

logger = logging.getLogger("tunelab.export")

ARCHITECTURES = {"llama": "LLAMA", "qwen2": "QWEN2"}

# pre-tokenizer regexes (tokenizer.json Split patterns, joined by " | ") -> llama.cpp's `tokenizer.ggml.pre`
_PRE_TOKENIZERS: dict[str, str] = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
}
_DEEPSEEK_V3_MARK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer; unknown ones are refused (wrong splits = wrong text)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    patterns = [p["pattern"]["Regex"] for p in parts if p.get("type") == "Split" and "Regex" in p.get("pattern", {})]
    if _DEEPSEEK_V3_MARK in patterns:
        return "deepseek-v3"
    if len(patterns) == 1 and patterns[0] in _PRE_TOKENIZERS:
        return _PRE_TOKENIZERS[patterns[0]]
    if not patterns and any(p.get("type") == "ByteLevel" and p.get("use_regex", True) for p in parts):
        return "gpt-2"
    raise UserError("GGUF: the tokenizer's pre-tokenizer is not one llama.cpp knows by name (known: qwen2, llama-bpe, "
                    "deepseek-v3, gpt-2); llama.cpp would split text differently. Convert with llama.cpp's convert_hf_to_gguf.py.")


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether encoding text puts bos first (the tokenizer's add_bos_token / post-processor, as transformers runs it)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    ids = tokenizer("a")["input_ids"]
    return bos is not None and bool(ids) and ids[0] == bos


def tokenizer_adds_eos(tokenizer: Any) -> bool:
    eos = getattr(tokenizer, "eos_token_id", None)
    ids = tokenizer("a")["input_ids"]
    return eos is not None and len(ids) > 1 and ids[-1] == eos


def add_bos_token(tokenizer: Any, template: Template | None) -> bool:
    """The GGUF's `tokenizer.ggml.add_bos_token`: llama.cpp puts bos before every prompt. True when the tokenizer
    adds one or the template starts with one (as tunelab's pretraining encodes text, `encode_pretrain`); the
    Modelfile then leaves that bos out of its template (modelfile.go_template), so both give the training ids."""
    from tunelab.export.modelfile import template_starts_with_bos

    if getattr(tokenizer, "bos_token_id", None) is None:
        return False
    return tokenizer_adds_bos(tokenizer) or (template is not None and template_starts_with_bos(template))


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    return float(config.get("rope_theta") or params.get("rope_theta") or 10000.0)


def _rope_scaling(config: dict[str, Any]) -> dict[str, Any] | None:
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or None
    if not scaling or scaling.get("rope_type", scaling.get("type", "default")) in ("default", None):
        return None
    return scaling


def _head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def llama3_rope_factors(config: dict[str, Any], scaling: dict[str, Any]) -> Any:
    """Llama 3.1's frequency factors, stored by llama.cpp as the tensor `rope_freqs.weight`."""
    import numpy as np

    dim = _head_dim(config)
    freqs = 1.0 / (_rope_theta(config) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    old = float(scaling.get("original_max_position_embeddings", 8192))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _permute(weights: Any, n_head: int) -> Any:
    """HF's rotary layout (halves) to llama.cpp's interleaved pairs, per head (convert_hf_to_gguf's permute)."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _tensors(folder: Path) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array) for every weight of a safetensors or legacy .bin export."""
    import torch

    files = sorted(folder.glob("model*.safetensors"))
    if files:
        from safetensors import safe_open

        for file in files:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    yield name, handle.get_tensor(name).to(torch.float32).numpy()
        return
    for file in sorted(folder.glob("pytorch_model*.bin")):
        for name, tensor in torch.load(file, map_location="cpu", weights_only=True).items():
            yield name, tensor.to(torch.float32).numpy()


def _add_hparams(writer: Any, config: dict[str, Any], arch: str) -> None:
    import gguf

    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_rope_dimension_count(_head_dim(config))
    if config.get("head_dim") and config["head_dim"] != config["hidden_size"] // config["num_attention_heads"]:
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))
    if arch == "llama":
        writer.add_vocab_size(int(config["vocab_size"]))
    scaling = _rope_scaling(config)
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(scaling["factor"]))
        elif kind == "yarn":
            writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            writer.add_rope_scaling_factor(float(scaling["factor"]))
            writer.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
        elif kind != "llama3":
            raise UserError(f"GGUF: rope scaling '{kind}' is not supported by tunelab's GGUF writer.")


def _add_tokenizer(writer: Any, folder: Path, vocab_size: int, template: Template | None) -> None:
    import gguf
    from transformers import AutoTokenizer

    tokenizer_json = folder / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise UserError(f"GGUF: {folder} has no tokenizer.json; only fast byte-level BPE tokenizers are converted.")
    data = _read_json(tokenizer_json)
    if data.get("model", {}).get("type") != "BPE" or data["model"].get("byte_fallback"):
        raise UserError("GGUF: only byte-level BPE tokenizers (Llama 3, Qwen2, DeepSeek) are converted; this one is "
                        "SentencePiece-style. Use llama.cpp's convert_hf_to_gguf.py.")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reverse = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    vocab_size = max(vocab_size, len(tokenizer))
    tokens: list[str] = []
    types: list[int] = []
    for index in range(vocab_size):
        if index not in reverse:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(reverse[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[index])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(data))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    # always written: without the key llama.cpp guesses from the pre-tokenizer, and Ollama dropped deepseek's bos
    special.add_special_token["bos"] = add_bos_token(tokenizer, template)
    special.add_special_token["eos"] = tokenizer_adds_eos(tokenizer)
    quiet = logging.getLogger("gguf")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # it logs the whole chat template at INFO
    try:
        special.add_to_gguf(writer)
    finally:
        quiet.setLevel(level)
    if not special.chat_template and getattr(tokenizer, "chat_template", None):
        template = tokenizer.chat_template
        writer.add_chat_template(template if isinstance(template, str) else template.get("default", ""))


def require_architecture(model_type: str, note: str = "") -> None:
    """Refuse an architecture the writer has no tensor map for."""
    if model_type not in ARCHITECTURES:
        raise UserError(f"GGUF: architecture '{model_type}' is not supported; tunelab writes GGUF for "
                        f"{', '.join(ARCHITECTURES)}. Use llama.cpp's convert_hf_to_gguf.py for others{note}.")


def require_supported(folder: Path, note: str = "") -> None:
    """What `write_gguf` would refuse, read from a model folder's config.json and tokenizer.json alone,
    so `--gguf` can be refused before any weight loads."""
    if (folder / "config.json").is_file():
        require_architecture(_read_json(folder / "config.json").get("model_type", ""), note)
    if (folder / "tokenizer.json").is_file():
        pre_tokenizer_name(_read_json(folder / "tokenizer.json"))


def write_gguf(folder: Path, out_file: Path, file_type: str = "f16", template: Template | None = None) -> Path:
    """Write `out_file` from the exported HF folder; return its path. `template` (the one trained with) decides,
    with the tokenizer, whether llama.cpp adds bos (`add_bos_token`)."""
    require_package("gguf", "GGUF export", package="gguf")
    import gguf
    import numpy as np

    config = _read_json(folder / "config.json")
    model_type = config.get("model_type", "")
    require_architecture(model_type)
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[model_type])
    blocks = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(arch, blocks)
    writer = gguf.GGUFWriter(str(out_file), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(folder.resolve().name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if file_type == "f16" else gguf.LlamaFileType.ALL_F32)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_hparams(writer, config, model_type)
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    tied = bool(config.get("tie_word_embeddings", False))
    scaling = _rope_scaling(config)
    if scaling is not None and scaling.get("rope_type", scaling.get("type")) == "llama3":
        writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(config, scaling))
    count = 0
    for name, array in _tensors(folder):
        if name.endswith("rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise UserError(f"GGUF: no llama.cpp name for tensor '{name}' of a {model_type} model.")
        if model_type == "llama" and name.endswith("self_attn.q_proj.weight"):
            array = _permute(array, n_head)
        elif model_type == "llama" and name.endswith("self_attn.k_proj.weight"):
            array = _permute(array, n_kv)
        if file_type == "f16" and array.ndim > 1:
            array = array.astype(np.float16)
        writer.add_tensor(target, np.ascontiguousarray(array))
        count += 1
    _add_tokenizer(writer, folder, int(config["vocab_size"]), template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    logger.info("wrote %s (%s, %d tensors, architecture %s)", out_file, file_type, count, model_type)
    return out_file
