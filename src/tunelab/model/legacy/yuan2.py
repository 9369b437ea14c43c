"""Yuan 2.0 (IEITYuan/Yuan2-2B-hf and the larger dense Yuan2 checkpoints): loaded as tunelab's own class.

No transformers architecture computes Yuan 2.0's localized filtering attention, so the native model is
`TunelabYuan2ForCausalLM` (yuan2_modeling.py; its docstring states the maths and what tunelab decides about
the original's <eod> attention reset, padding and packing). The weights need no conversion at all: the
native class keeps every parameter of the original under its original name and layout (yuan_hf_model.py,
`YuanForCausalLM`), including the per-head [query | key] blocks of cat(q_proj, k_proj) and the LFA's Conv2d
weights, so `to_native` / `to_original` only drop what the original never reads from a checkpoint.

Layout facts (original: yuan_hf_model.py of the hub's CPU revision):
- `YuanAttention.forward`: q_proj / k_proj read the LFA output, v_proj the layer input; cat(q, k) is viewed
  as [heads, 2·head_dim] and chunked: head h's query and key are columns [2h·d, (2h+1)·d) and
  [(2h+1)·d, (2h+2)·d) of the concatenation (the first half of the heads live in q_proj, the second in k_proj);
- `LocalizedFiltering`: conv1 [hidden/2, hidden, 2, 1] and conv2 [hidden, hidden/2, 2, 1] with biases, padded
  (1, 0) and cut to the sequence (causal, width 2), then `output_layernorm` (RMSNorm, eps 1e-6) of conv + input;
- `YuanMLP.forward`: down(gate(x) · silu(up(x))); `YuanRotaryEmbedding`: rotate-half, base 10000;
- `YuanForCausalLM` declares no tied keys, so on transformers 5 it loads with lm_head.weight missing (NaN
  loss); the checkpoint ties it (tie_word_embeddings true, the fixture's safetensors has no lm_head.weight).
  The native class declares the tie.
Tokenizer facts (tokenizer.model: LLaMA's sentencepiece BPE model extended to 134953 pieces; the hub's
tokenizer_config.json: LlamaTokenizer, legacy behaviour, add_bos / add_eos false, sep_token <sep>):
- dummy prefix "▁" before every piece of text between special tokens (slow LlamaTokenizer, legacy), spaces
  as "▁", no whitespace removal, byte fallback; `<eod>` 77185, `<n>` 77186, `<sep>` 77187, `<pad>` 77188,
  `<jupyter_*>` / `<empty_output>` / `<commit_*>` 96630..96637 are ordinary pieces, so sentencepiece alone
  encodes the text "<eod>" as four pieces;
- the model card loads the tokenizer with eos_token='<eod>' and adds Yuan's special tokens with
  `add_tokens([...], special_tokens=True)`: those in the vocabulary keep their ids, `<mask>`, `<predict>`,
  `<FIM_SUFFIX>`, `<FIM_PREFIX>`, `<FIM_MIDDLE>` get 134953..134957 in that order. The fast tokenizer here is
  that setup (`build_tokenizer`); `<n>` is not a special token there, and not here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.model.legacy.family import ConfigDict, LegacyFamily, StateDict
from tunelab.model.legacy.sentencepiece_file import read_sentencepiece as read_model_file

MODELING_FILE = Path(__file__).with_name("yuan2_modeling.py")
MODEL_TYPE = "tunelab_yuan2"
EOD = "<eod>"
#: the model card's `tokenizer.add_tokens([...], special_tokens=True)`, in its order (new ids follow it)
README_SPECIAL_TOKENS = (
    "<sep>", "<pad>", "<mask>", "<predict>", "<FIM_SUFFIX>", "<FIM_PREFIX>", "<FIM_MIDDLE>", "<commit_before>",
    "<commit_msg>", "<commit_after>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>",
    "<empty_output>",
)
_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_HEAD = "lm_head.weight"
_EMBED = "model.embed_tokens.weight"
#: buffers older revisions of yuan_hf_model.py may have saved; the native class computes them
_BUFFERS = ("rotary_emb.inv_freq", "rotary_emb.cos_cached", "rotary_emb.sin_cached")


# ---------------------------------------------------------------- recognising the checkpoint


def matches(config: Mapping[str, Any]) -> bool:
    """A Yuan 2.0 config.json: model_type `yuan`, or the `YuanForCausalLM` class by name."""
    architectures = config.get("architectures") or []
    auto = str((config.get("auto_map") or {}).get("AutoModelForCausalLM", ""))
    return config.get("model_type") == "yuan" or "YuanForCausalLM" in architectures or auto.endswith(".YuanForCausalLM")


def _check_supported(config: Mapping[str, Any]) -> None:
    """The native class is the dense LFA model; refuse the variants yuan_hf_model.py (or its siblings) also has."""
    from tunelab.errors import UserError

    if config.get("use_shareqk"):
        raise UserError("this Yuan checkpoint sets use_shareqk: true (one shared q/k projection instead of the "
                        "localized filtering attention); tunelab's native Yuan 2.0 supports only use_shareqk: false")
    if config.get("moe_config") or config.get("num_experts"):
        raise UserError("this is a Yuan 2.0 mixture-of-experts checkpoint (Yuan2-M32); tunelab's native Yuan 2.0 is "
                        "the dense model only")


def native_config(original: Mapping[str, Any]) -> ConfigDict:
    """The TunelabYuan2Config config.json. `reset_attention_mask` and the <eod> id (`eod_token`) are carried
    over; RoPE is the original's fixed base 10000 (`YuanRotaryEmbedding`), written as `rope_parameters`;
    `use_cache` is true (the hub config's false only stopped the original from returning a cache by default).
    """
    _check_supported(original)
    hidden = int(original.get("hidden_size", 2048))
    heads = int(original.get("num_attention_heads", 32))
    eod = original.get("eod_token", original.get("eod_token_id", 77185))
    return {
        "architectures": ["TunelabYuan2ForCausalLM"],
        "model_type": MODEL_TYPE,
        "vocab_size": int(original.get("vocab_size", 135040)),
        "hidden_size": hidden,
        "intermediate_size": int(original.get("intermediate_size", 8192)),
        "num_hidden_layers": int(original.get("num_hidden_layers", 24)),
        "num_attention_heads": heads,
        "head_dim": hidden // heads,
        "hidden_act": original.get("hidden_act", "silu"),
        "max_position_embeddings": int(original.get("max_position_embeddings", original.get("model_max_length", 8192))),
        "initializer_range": original.get("initializer_range", 0.02),
        "rms_norm_eps": original.get("rms_norm_eps", 1e-6),
        "use_cache": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "reset_attention_mask": bool(original.get("reset_attention_mask", False)),
        "eod_token_id": eod,
        "bos_token_id": original.get("bos_token_id", 77185),
        "eos_token_id": original.get("eos_token_id", 77185),
        "pad_token_id": original.get("pad_token_id", 77185),
        "tie_word_embeddings": bool(original.get("tie_word_embeddings", True)),
        "dtype": original.get("torch_dtype", original.get("dtype", "bfloat16")),
    }


# ---------------------------------------------------------------- weights


def to_native(weights: Mapping[str, Any], original: Mapping[str, Any]) -> StateDict:
    """The same tensors under the same names. Dropped: rotary buffers (recomputed) and, when the embeddings are
    tied, a stored lm_head.weight (the original ties it on load in transformers 4.x, the native class by
    `_tied_weights_keys`; keeping it would write the same tensor twice)."""
    tied = bool(original.get("tie_word_embeddings", True))
    return {name: tensor for name, tensor in weights.items()
            if not name.endswith(_BUFFERS) and not (tied and name == _HEAD)}


def to_original(weights: Mapping[str, Any], original: Mapping[str, Any]) -> StateDict:
    """The original layout is the native one: the same tensors (a tied head is not written, as the
    fixture's checkpoint saved by YuanForCausalLM.save_pretrained has none)."""
    tied = bool(original.get("tie_word_embeddings", True))
    return {name: tensor for name, tensor in weights.items() if not (tied and name == _HEAD)}


# ---------------------------------------------------------------- tokenizer


def read_sentencepiece(path: Path) -> tuple[list[tuple[str, float, int]], dict[str, Any]]:
    """(pieces as (piece, score, type), settings) of tokenizer.model (sentencepiece_file.py): model_type,
    byte_fallback, charsmap, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces."""
    spm = read_model_file(path)
    settings = {"model_type": spm.model_type, "byte_fallback": spm.byte_fallback, "charsmap": spm.charsmap,
                "add_dummy_prefix": spm.add_dummy_prefix, "remove_extra_whitespaces": spm.remove_extra_whitespaces,
                "escape_whitespaces": spm.escape_whitespaces}
    return list(spm.pieces), settings


def bpe_merges(pieces: list[tuple[str, float, int]]) -> list[tuple[str, str]]:
    """Merges under which HF's BPE picks what sentencepiece's BPE picks: sentencepiece joins, at each step, the
    adjacent pair whose joined piece scores highest, among normal pieces only. So every split of a normal
    piece into two normal pieces is a merge, ranked by the joined piece's score (ties by id)."""
    normal = {piece: (score, index) for index, (piece, score, kind) in enumerate(pieces) if kind == 1}
    ranked = []
    for piece, (score, index) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    ranked.sort()
    return [(left, right) for _, _, left, right in ranked]


def _token_text(value: Any, default: str | None) -> str | None:
    if isinstance(value, Mapping):
        return value.get("content", default)
    return default if value is None else value


def build_tokenizer(folder: Path) -> Any:
    """A fast tokenizer with the ids of the model card's setup of the original LlamaTokenizer (slow,
    sentencepiece, legacy; checked on transformers 4.53.3): eos `<eod>`, Yuan's special tokens added.

    The backend is LLaMA's legacy fast layout: normaliser "▁" prepended to, and spaces replaced in, every
    piece of text between special tokens (the slow legacy tokenizer runs sentencepiece, with its dummy
    prefix, on each such piece), BPE with byte fallback and sentencepiece's merge order, no bos / eos added.
    Special (never split, `skip_special_tokens` drops them): `<unk>` `<s>` `</s>` `<eod>` and the README
    list. One deliberate difference from the model card's tokenizer: there `</s>` stops being special once
    eos becomes `<eod>` (the text "</s>" encodes as three pieces); the hub files list it as a special token
    and it stays one here (id 2). pad is unset, as in the original (tunelab's loader uses eos, <eod> =
    the model's pad_token_id). The hub chat_template is kept.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    pieces, settings = read_sentencepiece(folder / "tokenizer.model")
    expected = {"BPE model": settings["model_type"] == 2, "byte_fallback": settings["byte_fallback"],
                "add_dummy_prefix": settings["add_dummy_prefix"], "escape_whitespaces": settings["escape_whitespaces"],
                "no remove_extra_whitespaces": not settings["remove_extra_whitespaces"],
                "no precompiled normalisation": not settings["charsmap"]}
    wrong = [name for name, ok in expected.items() if not ok]
    if wrong:
        raise ValueError(f"{folder / 'tokenizer.model'} is not Yuan 2.0's sentencepiece model: expected {', '.join(wrong)}")
    vocab = {piece: index for index, (piece, _, _) in enumerate(pieces)}
    unk = next(piece for piece, _, kind in pieces if kind == 2)
    backend = Tokenizer(BPE(vocab=vocab, merges=bpe_merges(pieces), unk_token=unk, fuse_unk=True, byte_fallback=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    controls = [piece for piece, _, kind in pieces if kind in (2, 3)]
    special = list(dict.fromkeys([*controls, EOD, *README_SPECIAL_TOKENS]))
    backend.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in special])
    # the dummy prefix of the text after a special token is dropped again, so decode(encode(text)) == text
    backend.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1),
        *(decoders.Replace(token + " ", token) for token in special),
    ])
    extra = [token for token in special if token not in {unk, "<s>", EOD, "<sep>"}]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=_token_text(config.get("bos_token"), "<s>"),
        eos_token=EOD,
        unk_token=_token_text(config.get("unk_token"), unk),
        sep_token=_token_text(config.get("sep_token"), "<sep>"),
        extra_special_tokens=extra,
        clean_up_tokenization_spaces=False,
        chat_template=config.get("chat_template"),
    )


# ---------------------------------------------------------------- the record


def register() -> None:
    """TunelabYuan2{Config, Model, ForCausalLM} with transformers' Auto classes."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from tunelab.model.legacy.yuan2_modeling import (
        TunelabYuan2Config,
        TunelabYuan2ForCausalLM,
        TunelabYuan2Model,
    )

    AutoConfig.register(MODEL_TYPE, TunelabYuan2Config, exist_ok=True)
    AutoModel.register(TunelabYuan2Config, TunelabYuan2Model, exist_ok=True)
    AutoModelForCausalLM.register(TunelabYuan2Config, TunelabYuan2ForCausalLM, exist_ok=True)


#: the original's linear layers keep their names; LoRA on the LFA's convolutions (lf_gate.conv1 / conv2) is
#: not offered (`all` targets linear layers only)
LORA_TARGETS: dict[str, tuple[str, ...]] = {name: (name,) for name in _LINEAR}

def warnings(native: Mapping[str, Any]) -> list[str]:
    """Yuan2's `reset_attention_mask` (true in the released configs) restarts attention after every <eod>, and
    the `yuan` template ends every answer with <eod>: in a multi-turn conversation each turn after the first
    sees none of the earlier ones, in training and in chat alike. The original code does the same (so
    tunelab keeps it); a user who trains multi-turn data must know it."""
    if not native.get("reset_attention_mask"):
        return []
    return ["reset_attention_mask: true (config.json) restarts attention after every <eod>, as Yuan2's own code "
            "does; with template yuan each answer ends with <eod>, so later turns of a multi-turn conversation do "
            "not see the earlier ones. Set reset_attention_mask: false in the checkpoint's config.json to keep "
            "whole conversations in view."]


FAMILY = LegacyFamily(
    name="yuan2",
    display="Yuan 2.0 (IEITYuan Yuan2-2B-hf and the dense Yuan2 checkpoints)",
    matches=matches,
    native="tunelab TunelabYuan2ForCausalLM (localized filtering attention)",
    native_config=native_config,
    to_native=to_native,
    to_original=to_original,
    build_tokenizer=build_tokenizer,
    lora_targets=LORA_TARGETS,
    conversion=(
        "weights: unchanged (same names and layout; a tied lm_head.weight and rotary buffers are not kept)",
        "YuanForCausalLM -> TunelabYuan2ForCausalLM: the same maths, plus the attention mask honoured and "
        "packed rows isolated (attention and the LFA convolutions restart at position 0)",
        "tokenizer.model (LlamaTokenizer, legacy) -> a fast tokenizer, the model card's ids (eos <eod>, "
        "Yuan's special tokens added)",
    ),
    register=register,
    code_file=MODELING_FILE,
    warnings=warnings,
)
