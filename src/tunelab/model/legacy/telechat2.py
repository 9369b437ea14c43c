"""TeleChat2 (Tele-AI TeleChat2-7B and the LLaMA-Factory tutorial's checkpoints) loaded as tunelab's Llama subclass.

TeleChat2 ships `modeling_telechat2.py` (`Telechat2ForCausalLM`, model_type `telechat`); it calls `.cuda()` while
it builds its rope and asserts flash-attn, and breaks on transformers 5. Its decoder is Llama's after a
weight-layout conversion (`modeling_telechat2.py`):
- `TelechatBlock`: pre-norm `input_layernorm` -> attention -> residual, `post_attention_layernorm` -> MLP ->
  residual (`apply_residual_connection_post_layernorm: false`), `ln_f` last; `MixedFusedRMSNorm` is
  LlamaRMSNorm (float32 norm, cast back, then the weight); no embedding norm (`embed_layernorm: false`);
- `TelechatAttention`: `query` (no bias) gives the heads in order; `key_value` (no bias) is viewed as
  [kv_heads, 2 * head_dim] and split in halves, so its output rows are INTERLEAVED per kv head:
  [k_0 | v_0 | k_1 | v_1 | ...]; kv head g serves query heads g*r .. g*r + r - 1 (`repeat_kv`, Llama's order);
  scores scaled by 1/sqrt(head_dim), causal + padding mask filled with the dtype min, float32 softmax;
  `dense` (o_proj) HAS a bias; rope is `rotate_half` style over the whole head (`apply_rotary_pos_emb_torch`);
- `TelechatMLP`: `down_proj(silu(gate_proj(x)) * up_proj(x))`, Llama's MLP, but `down_proj` HAS a bias;
- `Telechat2ForCausalLM`: untied `lm_head` without bias, plain mean cross-entropy over shifted labels.
What Llama cannot express - the rope (NTK-alpha and mscale beyond `training_seqlen`, cos / sin rounded to
float16 even in float32 models) and the exact bias pattern - is `telechat2_modeling.py`'s, which subclasses
Llama and changes only those (choice (b) of issue 25: plain Llama misses the 1e-4 parity bar, by 5e-4 at
training_seqlen tokens from the float32 rope alone and by ~0.5 past it without NTK-alpha / mscale, measured
by tests/model/legacy/test_telechat2.py with that plain-Llama variant).

The tokenizer (`tokenization_telechat.py`, TelechatTokenizer) is sentencepiece BPE over `tokenizer.model`:
identity normalisation, a dummy-prefix "▁" on every piece of text it encodes (the slow tokenizer encodes the
text between its special tokens separately, each with the prefix), 116 user-defined symbols (digits, "\\n",
"\\t", "_" runs, `<reserveN>`) that are atomic, byte fallback, no bos / eos added. Control pieces 0..17
(`<_unk>` `<_start>` `<_end>` `<_pad>` `<_user>` `<_bot>` `<_system>` ...) never come out of sentencepiece; the
family's chat builder inserts `<_user>` (4) / `<_bot>` (5) as ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.model.legacy.family import ConfigDict, LegacyFamily, StateDict
from tunelab.model.legacy.sentencepiece_file import read_sentencepiece as read_model_file

CODE_FILE = Path(__file__).with_name("telechat2_modeling.py")
MODEL_TYPE = "tunelab_telechat2"
ARCHITECTURE = "TunelabTelechat2ForCausalLM"
#: RotaryEmbedding(head_dim, config) in TelechatAttention: the base is the constructor default, no config key
ROPE_THETA = 10000.0
#: `TelechatForCausalLM.build_inputs_for_chat` (modeling_telechat.py of the 115B hub folder, the family's own
#: chat-input builder) as a chat template: bos, then `<_user>` + content per user turn, `<_bot>` + content +
#: eos per bot / assistant turn, `<_bot>` as the generation prompt; it drops system messages (only roles
#: user / bot make tokens). Used when the checkpoint's tokenizer_config.json has no chat_template.
BUILDER_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{- '<_user>' + message['content'] }}"
    "{%- elif message['role'] in ('assistant', 'bot') %}{{- '<_bot>' + message['content'] + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<_bot>' }}{%- endif %}"
)

_LAYER_RENAMES = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "self_attention.query.weight": "self_attn.q_proj.weight",
    "self_attention.dense.weight": "self_attn.o_proj.weight",
    "self_attention.dense.bias": "self_attn.o_proj.bias",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight",
    "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
    "mlp.down_proj.bias": "mlp.down_proj.bias",
}
_TOP_RENAMES = {
    "transformer.word_embeddings.weight": "model.embed_tokens.weight",
    "transformer.ln_f.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
_ORIGINAL_LAYER = re.compile(r"transformer\.h\.(\d+)\.(.+)$")
_NATIVE_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)$")
_KEY_VALUE = "self_attention.key_value.weight"
_K, _V = "self_attn.k_proj.weight", "self_attn.v_proj.weight"


def matches(config: Mapping[str, Any]) -> bool:
    """TeleChat2's config.json: `Telechat2ForCausalLM` in architectures or auto_map (model_type is `telechat`,
    which TeleChat 1 and the 115B hub code share with other maths, so the class name decides)."""
    auto_map = config.get("auto_map") or {}
    return "Telechat2ForCausalLM" in (config.get("architectures") or []) or str(
        auto_map.get("AutoModelForCausalLM", "")
    ).endswith(".Telechat2ForCausalLM")


def _check_supported(config: Mapping[str, Any]) -> None:
    """Refuse the switches of Telechat2Config that change the maths away from Llama's (no released TeleChat2
    checkpoint sets them): they would need layers this converter does not build."""
    problems = []
    if config.get("embed_layernorm"):
        problems.append("embed_layernorm: true (an RMSNorm after the word embedding)")
    if config.get("apply_residual_connection_post_layernorm"):
        problems.append("apply_residual_connection_post_layernorm: true (the residual is the normed input)")
    if int(config.get("num_moe_experts") or 0) > 0:
        problems.append(f"num_moe_experts: {config['num_moe_experts']} (a mixture of experts)")
    if config["hidden_size"] % config["n_head"]:
        problems.append("hidden_size is not a multiple of n_head")
    if problems:
        raise ValueError("this TeleChat2 config has no tunelab equivalent: " + "; ".join(problems))


def _kv_heads(config: Mapping[str, Any]) -> int:
    return int(config.get("num_key_value_heads") or config["n_head"])


def _dtype(config: Mapping[str, Any]) -> str | None:
    dtype = config.get("torch_dtype") or config.get("dtype")
    return str(dtype).removeprefix("torch.") if dtype else None


def native_config(config: Mapping[str, Any]) -> ConfigDict:
    """The `tunelab_telechat2` config.json (telechat2_modeling.TunelabTelechat2Config).

    `seq_length` -> max_position_embeddings; `training_seqlen` (config default 8192) and `base_seqlen` (read
    by the rope; a config without it falls back to training_seqlen) keep their names; `ffn_hidden_size` ->
    intermediate_size; `layer_norm_epsilon` -> rms_norm_eps; `attention_dropout` is mapped, `hidden_dropout`
    (residual dropout, training only) has no place in Llama. tie_word_embeddings defaults to TRUE as in
    transformers 4.x's PretrainedConfig: there the original ties `lm_head` to the embedding unless the config
    says false (all published TeleChat2 configs do)."""
    _check_supported(config)
    heads = int(config["n_head"])
    training_seqlen = int(config.get("training_seqlen", 8192))
    native: ConfigDict = {
        "architectures": [ARCHITECTURE],
        "model_type": MODEL_TYPE,
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "intermediate_size": config["ffn_hidden_size"],
        "num_hidden_layers": config["n_layer"],
        "num_attention_heads": heads,
        "num_key_value_heads": _kv_heads(config),
        "head_dim": config["hidden_size"] // heads,
        "hidden_act": "silu",
        "max_position_embeddings": int(config.get("seq_length", training_seqlen)),
        "initializer_range": config.get("initializer_range", 0.02),
        "rms_norm_eps": config.get("layer_norm_epsilon", 1e-5),
        "use_cache": config.get("use_cache", True),
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", True)),
        "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA},
        "attention_bias": False,
        "mlp_bias": False,
        "o_proj_bias": True,
        "down_proj_bias": True,
        "attention_dropout": float(config.get("attention_dropout", 0.0)),
        "training_seqlen": training_seqlen,
        "base_seqlen": int(config.get("base_seqlen", training_seqlen)),
        "bos_token_id": config.get("bos_token_id", 1),
        "eos_token_id": config.get("eos_token_id", 2),
        "pad_token_id": config.get("pad_token_id", 3),
    }
    dtype = _dtype(config)
    if dtype:
        native["dtype"] = dtype
    return native


def split_key_value(tensor: Any, kv_heads: int) -> tuple[Any, Any]:
    """`key_value.weight` [kv_heads * 2 * d, hidden] -> (k_proj, v_proj) [kv_heads * d, hidden] each: the
    original views the output as [kv_heads, 2 * d] and takes the halves (`TelechatAttention.forward`,
    `split_tensor_along_last_dim(mixed_kv_layer, 2)`), so rows run k_0, v_0, k_1, v_1, ... per head."""
    rows, hidden = tensor.shape
    pairs = tensor.reshape(kv_heads, 2, rows // (2 * kv_heads), hidden)
    return (pairs[:, 0].reshape(-1, hidden).contiguous(), pairs[:, 1].reshape(-1, hidden).contiguous())


def join_key_value(key: Any, value: Any, kv_heads: int) -> Any:
    """The inverse of `split_key_value`."""
    import torch

    hidden = key.shape[1]
    pairs = torch.stack((key.reshape(kv_heads, -1, hidden), value.reshape(kv_heads, -1, hidden)), dim=1)
    return pairs.reshape(-1, hidden).contiguous()


def to_native(weights: Mapping[str, Any], config: Mapping[str, Any]) -> StateDict:
    """Original names -> tunelab_telechat2 names (module docstring for the facts); key_value de-interleaved into
    k_proj / v_proj. A tied config drops `lm_head.weight` (transformers 4.x loaded the original tied, ignoring
    it). Unknown keys raise: they would mean a layer this converter does not know."""
    _check_supported(config)
    kv_heads = _kv_heads(config)
    tied = bool(config.get("tie_word_embeddings", True))
    native: StateDict = {}
    for key, tensor in weights.items():
        if key in _TOP_RENAMES:
            if not (tied and key == "lm_head.weight"):
                native[_TOP_RENAMES[key]] = tensor
            continue
        layer = _ORIGINAL_LAYER.match(key)
        if layer and layer.group(2) == _KEY_VALUE:
            prefix = f"model.layers.{layer.group(1)}"
            native[f"{prefix}.{_K}"], native[f"{prefix}.{_V}"] = split_key_value(tensor, kv_heads)
        elif layer and layer.group(2) in _LAYER_RENAMES:
            native[f"model.layers.{layer.group(1)}.{_LAYER_RENAMES[layer.group(2)]}"] = tensor
        else:
            raise KeyError(f"unexpected TeleChat2 weight {key!r}")
    return native


def to_original(weights: Mapping[str, Any], config: Mapping[str, Any]) -> StateDict:
    """tunelab_telechat2 names -> the original names, k / v interleaved back into key_value
    (`export_format: original`). A tied config writes `lm_head.weight` as a copy of the embedding."""
    kv_heads = _kv_heads(config)
    top_back = {native: original for original, native in _TOP_RENAMES.items()}
    layer_back = {native: original for original, native in _LAYER_RENAMES.items()}
    original: StateDict = {}
    kv: dict[str, dict[str, Any]] = {}
    for key, tensor in weights.items():
        if key in top_back:
            original[top_back[key]] = tensor
            continue
        layer = _NATIVE_LAYER.match(key)
        if layer and layer.group(2) in (_K, _V):
            kv.setdefault(layer.group(1), {})[layer.group(2)] = tensor
        elif layer and layer.group(2) in layer_back:
            original[f"transformer.h.{layer.group(1)}.{layer_back[layer.group(2)]}"] = tensor
        else:
            raise KeyError(f"unexpected tunelab_telechat2 weight {key!r}")
    for index, parts in kv.items():
        if set(parts) != {_K, _V}:
            raise KeyError(f"layer {index}: k_proj / v_proj incomplete ({sorted(parts)})")
        original[f"transformer.h.{index}.{_KEY_VALUE}"] = join_key_value(parts[_K], parts[_V], kv_heads)
    if "lm_head.weight" not in original and bool(config.get("tie_word_embeddings", True)):
        original["lm_head.weight"] = original["transformer.word_embeddings.weight"].clone()
    return original


# --- tokenizer ------------------------------------------------------------------------------------------------

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _BYTE = 1, 2, 3, 4, 6


def read_sentencepiece(path: Path) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """`tokenizer.model` (sentencepiece_file.py) -> ([(piece, type)] in id order, the settings that decide how
    it encodes: model_type, byte_fallback, add_dummy_prefix, remove_extra_whitespaces, normalizer name)."""
    spm = read_model_file(path)
    settings = {"model_type": spm.model_type, "byte_fallback": int(spm.byte_fallback),
                "add_dummy_prefix": int(spm.add_dummy_prefix),
                "remove_extra_whitespaces": int(spm.remove_extra_whitespaces), "normalizer": spm.normalizer}
    return [(piece, kind) for piece, _, kind in spm.pieces], settings


def _merges(pieces: list[tuple[str, int]], vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """A merge (left, right) for every split of a normal piece into two pieces, ranked by the merged piece's id
    (a sentencepiece BPE model stores pieces in merge order, score = -id), ties by the parts' ids."""
    ranked = []
    for index, (piece, kind) in enumerate(pieces):
        if kind != _NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                ranked.append((index, vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(left, right) for _, _, _, left, right in ranked]


def _token_text(value: Any, default: str) -> str:
    if isinstance(value, dict):
        return str(value.get("content", default))
    return str(value) if value else default


def build_tokenizer(folder: Path) -> Any:
    """A PreTrainedTokenizerFast with TelechatTokenizer's ids.

    - normaliser: Prepend("▁") + spaces -> "▁", on every stretch of text between special tokens (the slow
      tokenizer sentencepiece-encodes each stretch on its own, each with the dummy prefix; the family's chat
      builder tokenizes every message on its own, so "<_user>" + text gets the same ids as [4] + encode(text));
    - the user-defined symbols are cut out after that (a Split pre-tokenizer, longest first: sentencepiece
      matches them before BPE, with no dummy prefix of their own) and BPE returns a piece that is itself in the
      vocabulary whole (`ignore_merges`: they have no merge path), with byte fallback;
    - the 18 control / unknown pieces (ids 0..17) are special tokens recognised in text. The original does
      NOT parse `<_user>` & co. in text (sentencepiece never emits control pieces; only its bos / eos / pad /
      unk strings are split out, eos / pad with single_word); tunelab's templates render them as text, so here
      they must be - the ids of the family's own builder, which inserts them as ids;
    - bos `<_start>`, eos `<_end>`, pad `<_pad>` as the original; unk `<_unk>` (id 0): the original's
      tokenizer_config names `<_end>`, but its encoder maps unknown pieces to sentencepiece's unk, id 0;
    - no bos / eos added (add_bos_token / add_eos_token false in tokenizer_config.json, honoured if true);
    - the checkpoint's chat_template if its tokenizer_config.json has one, else `BUILDER_CHAT_TEMPLATE`.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    pieces, settings = read_sentencepiece(folder / "tokenizer.model")
    if settings["model_type"] != 2 or not settings["byte_fallback"] or settings["normalizer"] != "identity" \
            or not settings["add_dummy_prefix"] or settings["remove_extra_whitespaces"]:
        raise ValueError(f"{folder / 'tokenizer.model'}: not the TeleChat2 sentencepiece setup "
                         f"(BPE, byte fallback, identity normaliser, dummy prefix, whitespace kept): {settings}")
    vocab = {piece: index for index, (piece, _) in enumerate(pieces)}
    backend = Tokenizer(BPE(vocab, _merges(pieces, vocab), unk_token=pieces[0][0], fuse_unk=True,
                            byte_fallback=True, ignore_merges=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    user_defined = sorted((p for p, kind in pieces if kind == _USER_DEFINED), key=len, reverse=True)
    if user_defined:
        pattern = "|".join(re.escape(symbol) for symbol in user_defined)
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    control = [piece for piece, kind in pieces if kind in (_UNKNOWN, _CONTROL)]
    backend.add_special_tokens([AddedToken(piece, normalized=False, special=True) for piece in control])

    config_file = folder / "tokenizer_config.json"
    settings_json = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    bos = _token_text(settings_json.get("bos_token"), "<_start>")
    eos = _token_text(settings_json.get("eos_token"), "<_end>")
    pad = _token_text(settings_json.get("pad_token"), "<_pad>")
    add_bos, add_eos = bool(settings_json.get("add_bos_token")), bool(settings_json.get("add_eos_token"))
    if add_bos or add_eos:
        single = " ".join([bos] * add_bos + ["$A"] + [eos] * add_eos)
        pair = " ".join([bos] * add_bos + ["$A"] + [eos] * add_eos + [bos] * add_bos + ["$B"] + [eos] * add_eos)
        used = [(bos, vocab[bos])] * add_bos + [(eos, vocab[eos])] * add_eos
        backend.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                               special_tokens=list(dict(used).items()))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=pieces[0][0],
        extra_special_tokens=[t for t in control if t not in (bos, eos, pad, pieces[0][0])],
        model_max_length=settings_json.get("model_max_length", 8192),
        clean_up_tokenization_spaces=False,
        chat_template=settings_json.get("chat_template") or BUILDER_CHAT_TEMPLATE,
    )


def register() -> None:
    """Registers tunelab_telechat2 with AutoConfig / AutoModel / AutoModelForCausalLM."""
    from tunelab.model.legacy import telechat2_modeling

    telechat2_modeling.register()


FAMILY = LegacyFamily(
    name="telechat2",
    display="TeleChat2 (Tele-AI TeleChat2-7B)",
    matches=matches,
    native="tunelab TunelabTelechat2ForCausalLM (transformers Llama with TeleChat2's rope)",
    native_config=native_config,
    to_native=to_native,
    to_original=to_original,
    build_tokenizer=build_tokenizer,
    lora_targets={
        "query": ("q_proj",),
        "key_value": ("k_proj", "v_proj"),
        "dense": ("o_proj",),
        "gate_proj": ("gate_proj",),
        "up_proj": ("up_proj",),
        "down_proj": ("down_proj",),
        "lm_head": ("lm_head",),
    },
    conversion=(
        "transformer.h.N.self_attention.key_value -> model.layers.N.self_attn.k_proj / v_proj "
        "(rows interleaved per kv head: k_0 v_0 k_1 v_1 ...)",
        "self_attention.query -> self_attn.q_proj; self_attention.dense (weight, bias) -> self_attn.o_proj; "
        "mlp.gate_proj / up_proj / down_proj (down_proj with bias) keep their names",
        "input_layernorm / post_attention_layernorm keep their names; transformer.ln_f -> model.norm; "
        "transformer.word_embeddings -> model.embed_tokens (no padding_idx)",
        "rope: TeleChat2's NTK-alpha + mscale beyond training_seqlen, cos / sin rounded to float16 "
        "(telechat2_modeling.py; per packed sequence)",
        "tokenizer: tokenizer.model (sentencepiece BPE) -> tokenizers BPE with byte fallback; control pieces "
        "0..17 are special tokens; unk = <_unk> (0)",
    ),
    register=register,
    code_file=CODE_FILE,
)
