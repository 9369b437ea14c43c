"""Baichuan2 (Baichuan2-7B / 13B, Base and Chat): two legacy families, one converter.

Both checkpoints ship `modeling_baichuan.py` for transformers 4.x (the tokenizer breaks from 4.34, `no
attribute sp_model`). Their weights share one layout; only the position scheme differs:
- 7B uses RoPE and becomes transformers' `LlamaForCausalLM` exactly (`FAMILY_7B`);
- 13B uses ALiBi, which no transformers architecture has with Baichuan's slopes, and becomes tunelab's own
  `TunelabBaichuan2AlibiForCausalLM` (`baichuan2_13b_modeling.py`, `FAMILY_13B`).

Layout facts (original: modeling_baichuan.py of Baichuan2-7B-Chat / Baichuan2-13B-Chat):
- `Attention.forward` / `BaichuanAttention.forward`: `W_pack` ([3·hidden, hidden], no bias) is unflattened
  as (3, hidden): contiguous q / k / v thirds, each then split per head. Not interleaved per head;
- `NormHead.forward`: the head's logits are hidden · normalize(W)ᵀ, every row divided by its L2 norm (train
  mode normalises in each forward; eval mode overwrites the stored weight with the normalised copy on the
  first forward). The conversion stores the normalised rows, so a plain Linear head gives the same logits in
  both modes. What that means for FULL fine-tuning of the head: the original trains W through the
  normalisation (its rows stay on the unit sphere and only their directions learn); the native Linear trains
  the rows themselves, so their norms may drift, which scales the logits of those tokens. LoRA and freeze
  tuning leave the head as converted (tunelab's defaults target no head). Exporting a head whose norms
  drifted back to the original layout is lossy: the original code re-normalises every row when it loads;
- the loss adds z_loss_weight · mean(max-logit²) (`BaichuanForCausalLM.forward`); z_loss_weight is 0 in the
  configuration classes and in the released configs, so the native loss (cross-entropy) is the same; a
  non-zero value is reported by `z_loss_weight` and not reproduced;
- 7B `RotaryEmbedding`: rotate-half RoPE over the whole head, base 10000, no scaling (= Llama's default);
- RMSNorm eps `rms_norm_eps`, SwiGLU MLP down(silu(gate(x)) · up(x)), untied embeddings.
Tokenizer facts (tokenizer.model, a sentencepiece BPE model; tokenization_baichuan.py):
- no dummy prefix, no whitespace removal, spaces escaped as "▁", identity normaliser, byte fallback
  (<0x00>..<0xFF> = ids 1089..1344), digits split; 1086 user-defined pieces (ids 3..1088: "\\n", "\\t", some
  HTML tags, full-width punctuation, "<reserved_0>".."<reserved_999>"...) that sentencepiece emits whole
  wherever they appear in text; `<unk>` 0, `<s>` 1, `</s>` 2; pad is `<unk>` (0); no bos / eos added;
- chat (generation_utils.py, `build_chat_input`): system text encoded as plain text, then per turn 195
  (`<reserved_106>`, user) or 196 (`<reserved_107>`, assistant) and the encoded content, no eos between
  turns, 196 appended for the answer. Those two are user-defined pieces, so the text "<reserved_106>" encodes
  as 195 and a rendered template gives the builder's ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.model.legacy.family import ConfigDict, LegacyFamily, StateDict
from tunelab.model.legacy.sentencepiece_file import read_sentencepiece as read_model_file

#: Baichuan2's vocabulary (Baichuan-1, which has no NormHead, has 64000): the family's fingerprint
VOCAB_SIZE = 125696
USER_TOKEN_ID = 195  # <reserved_106>
ASSISTANT_TOKEN_ID = 196  # <reserved_107>
_QKV = ("q_proj", "k_proj", "v_proj")
_HEAD = "lm_head.weight"
MODELING_FILE = Path(__file__).with_name("baichuan2_13b_modeling.py")

#: tunelab's template `baichuan2` as a jinja chat template, for the saved tokenizer (apply_chat_template):
#: the ids of `build_chat_input` (its left truncation to model_max_length is not reproduced)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<reserved_106>' + message['content'] }}"
    "{% else %}{{ '<reserved_107>' + message['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<reserved_107>' }}{% endif %}"
)


# ---------------------------------------------------------------- recognising the checkpoints


def is_baichuan2(config: Mapping[str, Any]) -> bool:
    """A Baichuan2 config.json: model_type `baichuan` with Baichuan2's vocabulary (Baichuan-1 shares the
    model_type but has 64000 ids and a plain head, so converting it as Baichuan2 would be wrong)."""
    return config.get("model_type") == "baichuan" and config.get("vocab_size") == VOCAB_SIZE


def uses_alibi(config: Mapping[str, Any]) -> bool:
    """13B (ALiBi) or 7B (RoPE). Their config classes differ: the 7B one has `max_position_embeddings` (its
    rotary cache length) and writes it to every config.json; the 13B one has only `model_max_length`."""
    return "max_position_embeddings" not in config


def matches_7b(config: Mapping[str, Any]) -> bool:
    return is_baichuan2(config) and not uses_alibi(config)


def matches_13b(config: Mapping[str, Any]) -> bool:
    return is_baichuan2(config) and uses_alibi(config)


def z_loss_weight(config: Mapping[str, Any]) -> float:
    """The original's z-loss weight (loss += weight · mean(max-logit²)); 0 unless the config sets it."""
    return float(config.get("z_loss_weight") or 0)


# ---------------------------------------------------------------- configs


def _common_config(config: Mapping[str, Any]) -> ConfigDict:
    native: ConfigDict = {
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "intermediate_size": config["intermediate_size"],
        "num_hidden_layers": config["num_hidden_layers"],
        "num_attention_heads": config["num_attention_heads"],
        "hidden_act": config.get("hidden_act", "silu"),
        "rms_norm_eps": config.get("rms_norm_eps", 1e-6),
        "initializer_range": config.get("initializer_range", 0.02),
        "use_cache": True,
        "bos_token_id": config.get("bos_token_id", 1),
        "eos_token_id": config.get("eos_token_id", 2),
        "pad_token_id": config.get("pad_token_id", 0),
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", False)),
    }
    dtype = config.get("torch_dtype") or config.get("dtype")
    if dtype:
        native["dtype"] = dtype
    return native


def native_config_7b(config: Mapping[str, Any]) -> ConfigDict:
    """Baichuan2-7B -> LlamaConfig: MHA (kv heads = heads), RoPE base 10000 without scaling over the whole
    head (`RotaryEmbedding(head_dim, max_position_embeddings)`: base 10000 is hard-coded), no biases."""
    heads = config["num_attention_heads"]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **_common_config(config),
        "num_key_value_heads": heads,
        "head_dim": config["hidden_size"] // heads,
        "max_position_embeddings": config.get(
            "max_position_embeddings", config.get("model_max_length", 4096)
        ),
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
    }


def native_config_13b(config: Mapping[str, Any]) -> ConfigDict:
    """Baichuan2-13B -> tunelab_baichuan2_alibi: the same block, no rotary; `model_max_length` (the
    original's ALiBi cache length) becomes `max_position_embeddings`."""
    from tunelab.model.legacy.baichuan2_13b_modeling import MODEL_TYPE

    return {
        "architectures": ["TunelabBaichuan2AlibiForCausalLM"],
        "model_type": MODEL_TYPE,
        **_common_config(config),
        "max_position_embeddings": config.get("model_max_length", 4096),
    }


# ---------------------------------------------------------------- weights


def normalise_head(weight: Any) -> Any:
    """The NormHead rows divided by their L2 norm, in float32: `F.normalize(W)`, which is what the original
    multiplies hidden states by. Kept in float32 even for a bf16 / fp16 checkpoint: rounding the unit rows
    back to bf16 moves them off the unit sphere by up to 4e-3, which a float32 run of the original never
    sees (measured on the tiny 7B fixture: 7.7e-3 on the logits); a bf16 run casts the head on load anyway."""
    import torch
    from torch.nn import functional as F

    return F.normalize(weight.to(torch.float32), dim=-1)


def _w_pack_key(name: str) -> bool:
    return name.endswith(".self_attn.W_pack.weight")


def to_native(weights: Mapping[str, Any], config: Mapping[str, Any]) -> StateDict:
    """Original weights -> native ones: `W_pack` -> q_proj / k_proj / v_proj (its contiguous thirds), the head
    normalised (see the module docstring); every other tensor keeps its name and value."""
    hidden = config["hidden_size"]
    native: StateDict = {}
    for name, tensor in weights.items():
        if _w_pack_key(name):
            if tuple(tensor.shape) != (3 * hidden, hidden):
                raise ValueError(f"{name}: expected [{3 * hidden}, {hidden}], got {list(tensor.shape)}")
            prefix = name[: -len("W_pack.weight")]
            for third, proj in enumerate(_QKV):
                native[f"{prefix}{proj}.weight"] = tensor[third * hidden : (third + 1) * hidden].clone()
        elif name == _HEAD:
            native[name] = normalise_head(tensor)
        else:
            native[name] = tensor
    return native


def to_original(weights: Mapping[str, Any], config: Mapping[str, Any]) -> StateDict:
    """Native weights -> the original layout: q / k / v concatenated back into `W_pack`. The head is written as
    it is: the original normalises it again in its forward, so a head with unit rows (as converted) gives the
    same logits; the norms of the original rows before conversion are not recoverable (they never mattered)."""
    import torch

    original: StateDict = {}
    for name, tensor in weights.items():
        if name.endswith(".self_attn.q_proj.weight"):
            prefix = name[: -len("q_proj.weight")]
            parts = [weights[f"{prefix}{proj}.weight"] for proj in _QKV]
            original[f"{prefix}W_pack.weight"] = torch.cat(parts, dim=0)
        elif name.endswith((".self_attn.k_proj.weight", ".self_attn.v_proj.weight")):
            continue
        else:
            original[name] = tensor
    return original


# ---------------------------------------------------------------- tokenizer


def read_sentencepiece(path: Path) -> dict[str, Any]:
    """The parts of tokenizer.model the fast tokenizer needs (sentencepiece_file.py), as pieces (piece, score,
    type), trainer {model_type, byte_fallback} and normalizer {name, charsmap, add_dummy_prefix,
    remove_extra_whitespaces, escape_whitespaces}."""
    spm = read_model_file(path)
    return {"pieces": list(spm.pieces), "trainer": {"model_type": spm.model_type, "byte_fallback": spm.byte_fallback},
            "normalizer": {"name": spm.normalizer, "charsmap": spm.charsmap, "add_dummy_prefix": spm.add_dummy_prefix,
                           "remove_extra_whitespaces": spm.remove_extra_whitespaces,
                           "escape_whitespaces": spm.escape_whitespaces}}


def _check_spm_settings(spm: Mapping[str, Any]) -> None:
    """The fast tokenizer below reproduces exactly these sentencepiece settings (Baichuan2's); refuse others."""
    trainer, normalizer = spm["trainer"], spm["normalizer"]
    expected = {
        "BPE model (model_type 2)": trainer["model_type"] == 2,
        "byte_fallback": trainer["byte_fallback"],
        "no add_dummy_prefix": not normalizer["add_dummy_prefix"],
        "no remove_extra_whitespaces": not normalizer["remove_extra_whitespaces"],
        "escape_whitespaces": normalizer["escape_whitespaces"],
        "no precompiled normalisation (identity)": not normalizer["charsmap"],
    }
    wrong = [name for name, ok in expected.items() if not ok]
    if wrong:
        raise ValueError(
            f"tokenizer.model is not Baichuan2's sentencepiece model: expected {', '.join(wrong)}"
        )


def bpe_merges(pieces: list[tuple[str, float, int]]) -> list[tuple[str, str]]:
    """Merges that make HF's BPE pick what sentencepiece's BPE picks: sentencepiece joins, at each step, the
    adjacent pair whose joined piece has the highest score, among NORMAL pieces only (user-defined pieces are
    matched whole beforehand). So every split of a normal piece into two normal pieces is a merge, ranked by
    the joined piece's score (ties by id)."""
    normal = {piece: (score, index) for index, (piece, score, kind) in enumerate(pieces) if kind == 1}
    ranked = []
    for piece, (score, index) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    ranked.sort()
    return [(left, right) for _, _, left, right in ranked]


def _special_token(config: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = config.get(key, default)
    if isinstance(value, Mapping):
        return value.get("content", default)
    return value


def build_tokenizer(folder: Path) -> Any:
    """A fast tokenizer with the original ids (checked against BaichuanTokenizer on transformers 4.33.3).

    Built from tokenizer.model as sentencepiece encodes: spaces -> "▁" (no dummy prefix), BPE with byte
    fallback, the user-defined pieces as (non-special) added tokens matched in raw text, `<unk>` / `<s>` /
    `</s>` as special added tokens (the original splits them out of text too: "a<s>b" -> a, 1, b). bos / eos
    are added as tokenizer_config.json says (the released files: neither), pad is `<unk>` (0).
    Decoding differs from the original in one way: BaichuanTokenizer.convert_tokens_to_string inserts a space
    before the text that precedes a special token ("a<s>b" decodes to " a<s>b"); this decodes to the text.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    spm = read_sentencepiece(folder / "tokenizer.model")
    _check_spm_settings(spm)
    pieces = spm["pieces"]
    vocab = {piece: index for index, (piece, _, _) in enumerate(pieces)}
    unk = next(piece for piece, _, kind in pieces if kind == 2)
    backend = Tokenizer(
        BPE(vocab=vocab, merges=bpe_merges(pieces), unk_token=unk, fuse_unk=True, byte_fallback=True)
    )
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_tokens(
        [AddedToken(piece, normalized=False, special=False) for piece, _, kind in pieces if kind == 4]
    )
    # <unk> / <s> / </s> become special added tokens through the bos / eos / unk / pad arguments below

    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    bos = _special_token(config, "bos_token", "<s>")
    eos = _special_token(config, "eos_token", "</s>")
    # BaichuanTokenizer's defaults: add_bos_token True, add_eos_token False (the released files set both false)
    add_bos, add_eos = bool(config.get("add_bos_token", True)), bool(config.get("add_eos_token", False))
    if add_bos or add_eos:  # BaichuanTokenizer.build_inputs_with_special_tokens: bos A eos (bos B eos)
        single = " ".join([*([f"{bos}:0"] if add_bos else []), "$A:0", *([f"{eos}:0"] if add_eos else [])])
        pair = " ".join([single, single.replace("$A", "$B").replace(":0", ":1")])
        backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(t, vocab[t]) for t in {bos, eos}]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token=_special_token(config, "unk_token", unk),
        pad_token=_special_token(config, "pad_token", unk),
        model_max_length=config.get("model_max_length", 4096),
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


# ---------------------------------------------------------------- the records


def register_13b() -> None:
    """TunelabBaichuan2Alibi{Config, Model, ForCausalLM} with transformers' Auto classes."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from tunelab.model.legacy.baichuan2_13b_modeling import (
        MODEL_TYPE,
        TunelabBaichuan2AlibiConfig,
        TunelabBaichuan2AlibiForCausalLM,
        TunelabBaichuan2AlibiModel,
    )

    AutoConfig.register(MODEL_TYPE, TunelabBaichuan2AlibiConfig, exist_ok=True)
    AutoModel.register(TunelabBaichuan2AlibiConfig, TunelabBaichuan2AlibiModel, exist_ok=True)
    AutoModelForCausalLM.register(
        TunelabBaichuan2AlibiConfig, TunelabBaichuan2AlibiForCausalLM, exist_ok=True
    )


LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "W_pack": _QKV,
    "o_proj": ("o_proj",),
    "gate_proj": ("gate_proj",),
    "up_proj": ("up_proj",),
    "down_proj": ("down_proj",),
}
_CONVERSION = (
    "W_pack [3·hidden, hidden] -> q_proj / k_proj / v_proj (contiguous thirds)",
    "lm_head (NormHead) -> its rows L2-normalised once, a plain Linear (full fine-tuning no longer keeps them unit)",
    "z-loss (z_loss_weight · mean max-logit², 0 in the released configs) is not part of the native loss",
    "tokenizer.model (sentencepiece BPE, byte fallback, no dummy prefix) -> a fast tokenizer, same ids",
)

FAMILY_7B = LegacyFamily(
    name="baichuan2_7b",
    display="Baichuan2-7B (Baichuan2-7B-Base / -Chat, RoPE)",
    matches=matches_7b,
    native="transformers LlamaForCausalLM",
    native_config=native_config_7b,
    to_native=to_native,
    to_original=to_original,
    build_tokenizer=build_tokenizer,
    lora_targets=LORA_TARGETS,
    conversion=(*_CONVERSION, "RoPE (base 10000, rotate-half) -> Llama's default rope"),
)

FAMILY_13B = LegacyFamily(
    name="baichuan2_13b",
    display="Baichuan2-13B (Baichuan2-13B-Base / -Chat, ALiBi)",
    matches=matches_13b,
    native="tunelab TunelabBaichuan2AlibiForCausalLM (tunelab_baichuan2_alibi)",
    native_config=native_config_13b,
    to_native=to_native,
    to_original=to_original,
    build_tokenizer=build_tokenizer,
    lora_targets=LORA_TARGETS,
    conversion=(*_CONVERSION, "ALiBi (interleaved slopes) kept; packed rows isolated by position_ids"),
    register=register_13b,
    code_file=MODELING_FILE,
)

#: both records, for the registry
FAMILIES = (FAMILY_7B, FAMILY_13B)
