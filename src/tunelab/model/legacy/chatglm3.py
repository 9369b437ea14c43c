"""ChatGLM3 (THUDM/chatglm3-6b, -base, -32k) loaded as transformers' GLM (`GlmForCausalLM`, model_type `glm`).

ChatGLM3 ships `modeling_chatglm.py` (`ChatGLMForConditionalGeneration`, model_type `chatglm`) and
`tokenization_chatglm.py`, written for transformers 4.x: its tokenizer breaks from 4.45, its `generate` from 4.42.
Its layers are, after a weight-layout conversion, exactly transformers' GLM (the maintained port of the same
architecture family, GLM-4):
- activations are `[seq, batch, hidden]` inside (`Embedding.forward` transposes), which changes no value;
- pre-norm RMSNorm blocks (`GLMBlock.forward`: `input_layernorm` -> attention -> residual,
  `post_attention_layernorm` -> MLP -> residual; `GLMTransformer.final_layernorm`), the norm computed in float32
  (`RMSNorm.forward`), as `GlmRMSNorm` does;
- `SelfAttention.query_key_value` is one linear with a bias (`add_qkv_bias`) whose output splits into contiguous
  `[q: heads*d | k: groups*d | v: groups*d]` blocks (`mixed_x_layer.split`, multi-query branch; not per head),
  each head `kv_channels` wide; the key / value of group g are `expand`ed to the contiguous block of query
  heads `g*heads/groups ...` - GLM's `repeat_kv` - and `dense` has no bias: GLM's biased q/k/v, unbiased o_proj;
- rotary embedding (`RotaryEmbedding(kv_channels // 2)`, `apply_rotary_pos_emb`) over the first `kv_channels/2`
  dims of each head, in interleaved pairs `(x[2i], x[2i+1])`, base 10000 (`rope_ratio` multiplies it in the
  checkpoints whose code reads it, ChatGLM3-6B-32k / 128k), the rest of the head passes through: GLM's
  `partial_rotary_factor: 0.5` with its interleaved `rotate_half`. The stored `rotary_pos_emb.inv_freq` buffer is
  never read for its values (`forward_impl` recomputes the frequencies in float32); only its dtype decides
  whether the cos / sin cache is cast to half / bfloat16, as GLM casts cos / sin to the activations' dtype;
- `CoreAttention` (torch >= 2 branch) is `scaled_dot_product_attention` with the default 1/sqrt(d) scale, causal,
  or with the boolean mask `get_masks` builds (causal AND key padding); `apply_query_key_layer_scaling` /
  `attention_softmax_in_fp32` only act in its torch < 2 branch, where they divide by `layer_number` and multiply
  back in float32: neutral in float32;
- `MLP.dense_h_to_4h` is `[gate | up]` with swiglu (`silu(x[0]) * x[1]` of `torch.chunk(x, 2)`): GLM's
  `gate_up_proj` unchanged; `dense_4h_to_h` is `down_proj`;
- `output_layer` is untied (the class has no `get_output_embeddings()`): `lm_head`; the loss is the shifted
  cross-entropy over the whole vocabulary with ignore_index -100 (`ChatGLMForConditionalGeneration.forward`).

Train and eval: the original differs only by dropout (`hidden_dropout` after attention and MLP, 0.0 in every
ChatGLM3 checkpoint; GLM has no such dropout, so a non-zero value is dropped with a warning). Position ids: the
original's default is `arange` even in a left-padded batch (`get_position_ids`), as GLM's is.

Not representable in GLM and refused (no ChatGLM3 checkpoint sets them): `add_bias_linear`, LayerNorm instead of
RMSNorm (`rmsnorm: false`), `post_layer_norm: false`, `apply_residual_connection_post_layernorm`,
`fp32_residual_connection`, `pre_seq_len` (P-tuning v2 prefix) and `quantization_bit` (int4/int8 weights).
`original_rope` is read by nothing in the code (`RotaryEmbedding.original_impl` is stored, never used).

The tokenizer (`tokenization_chatglm.py`, `SPTokenizer`) is sentencepiece BPE over `tokenizer.model` (64789
pieces: identity normaliser, dummy "▁" prefix, no whitespace collapsing, byte fallback) plus nine ids after it:
[MASK] [gMASK] [sMASK] sop eop <|system|> <|user|> <|assistant|> <|observation|> (64789 ...). `encode` prepends
[gMASK] sop; unk = pad = <unk> (0), eos = </s> (2), no bos; padding on the left. The original's `len(tokenizer)`
is 64796 on 4.34+ (it leaves out <|assistant|> and <|observation|>); the fast tokenizer holds all 64798.
Its `build_chat_input` writes each turn as `<|role|>` + sp("\\n") + sp(content), which is what tokenizing the
text `<|role|>\\n content` gives (the byte-fallback newline never merges), so tunelab's `chatglm3` template
rendered as text reproduces it; for that, control and role tokens written in text become their ids here
(the original parses role tokens only with `encode_special_tokens=True`, and never </s>, sop, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.model.legacy.family import ConfigDict, LegacyFamily, StateDict

logger = logging.getLogger("tunelab.model")

#: `SPTokenizer.__init__`: these, in this order, take the ids right after the sentencepiece pieces
GLM_SPECIAL_TOKENS: tuple[str, ...] = (
    "[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
)
#: ids the original's special tokens have in ChatGLM3's tokenizer.model (64789 pieces)
SPECIAL_START_ID = 64789
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
#: `ChatGLMTokenizer.get_prefix_tokens`: what `encode` puts before the text
PREFIX = ("[gMASK]", "sop")
#: `ChatGLMForConditionalGeneration.chat / stream_chat`: generation stops on eos or the next role token
CHAT_STOP_TOKENS = (EOS, "<|user|>", "<|observation|>")
#: words that are also ordinary text ("sop", "eop" in "Aesop", "People"): matched only as whole words
_WORDLIKE = frozenset({"sop", "eop"})
#: the chat template later THUDM/chatglm3-6b revisions ship (also llama.cpp's "ChatGLM3" case): the text form of
#: `build_chat_input`, equal to tunelab's `chatglm3` template
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first %}[gMASK]sop<|{{ message['role'] }}|>\n {{ message['content'] }}"
    "{% else %}<|{{ message['role'] }}|>\n {{ message['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_QKV = ("q_proj", "k_proj", "v_proj")
# original module path inside transformer.encoder.layers.N -> native path inside model.layers.N
_LAYER_RENAMES = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "self_attention.dense.weight": "self_attn.o_proj.weight",
    "mlp.dense_h_to_4h.weight": "mlp.gate_up_proj.weight",
    "mlp.dense_4h_to_h.weight": "mlp.down_proj.weight",
}
_TOP_RENAMES = {
    "transformer.embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "transformer.encoder.final_layernorm.weight": "model.norm.weight",
    "transformer.output_layer.weight": "lm_head.weight",
}
_LAYER_PREFIX, _NATIVE_LAYER_PREFIX = "transformer.encoder.layers.", "model.layers."
_INV_FREQ = "transformer.rotary_pos_emb.inv_freq"
# config values the original supports but GLM cannot express: key -> (the value GLM's maths equals, why)
_REFUSED = {
    "add_bias_linear": (False, "biases on dense / dense_h_to_4h / dense_4h_to_h"),
    "rmsnorm": (True, "LayerNorm instead of RMSNorm"),
    "post_layer_norm": (True, "no final norm"),
    "apply_residual_connection_post_layernorm": (False, "residuals taken after the norm"),
    "fp32_residual_connection": (False, "a float32 residual stream"),
    "pre_seq_len": (None, "a P-tuning v2 prefix encoder"),
    "quantization_bit": (0, "quantized (int4 / int8) weights"),
}


def matches(config: Mapping[str, Any]) -> bool:
    """ChatGLM2 / ChatGLM3 layout (`modeling_chatglm.py` of THUDM/chatglm3-6b) with the 65024-id sentencepiece
    vocabulary. ChatGLM-6B (v1) also says `chatglm` but has 2-D positions and no `padded_vocab_size`; GLM-4's
    remote-code checkpoints say `chatglm` with a 151552-id tiktoken vocabulary: neither matches."""
    return (
        config.get("model_type") == "chatglm"
        and "position_encoding_2d" not in config
        and config.get("padded_vocab_size") == 65024
        and "kv_channels" in config
    )


def _geometry(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """(query heads, kv groups, head width) as `SelfAttention.__init__` reads them."""
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("kv_channels") or config["hidden_size"] // heads)
    groups = int(config.get("multi_query_group_num", 1)) if config.get("multi_query_attention") else heads
    return heads, groups, head_dim


def _check_supported(config: Mapping[str, Any]) -> None:
    from tunelab.errors import UserError

    for key, (value, what) in _REFUSED.items():
        if config.get(key, value) != value:
            raise UserError(f"{key}: {config.get(key)!r} in this ChatGLM checkpoint's config.json means {what}, "
                            "which transformers' GLM cannot represent; tunelab loads ChatGLM3 only with "
                            f"{key}: {value!r} (every THUDM/chatglm3-6b checkpoint)")


def native_config(original: Mapping[str, Any]) -> ConfigDict:
    """The GlmConfig of this checkpoint (fields from `ChatGLMConfig` / `ChatGLMModel.__init__`).

    max_position_embeddings is `seq_length`: the original builds its rope cache for exactly that many positions.
    eos_token_id lists </s> and the two role tokens `chat()` stops on (as GLM-4's config does), so `generate` on
    the native model stops where the original's chat does; pad stays 0 (<unk>), as the original config says.
    """
    _check_supported(original)
    heads, groups, head_dim = _geometry(original)
    if float(original.get("hidden_dropout", 0.0) or 0.0):
        logger.warning("hidden_dropout %s of this ChatGLM checkpoint is not reproduced: transformers' GLM has no "
                       "residual dropout (0.0 in every THUDM checkpoint)", original["hidden_dropout"])
    rope_theta = 10000.0 * float(original.get("rope_ratio", 1.0) or 1.0)
    return {
        "architectures": ["GlmForCausalLM"],
        "model_type": "glm",
        "vocab_size": int(original["padded_vocab_size"]),
        "hidden_size": int(original["hidden_size"]),
        "intermediate_size": int(original["ffn_hidden_size"]),
        "num_hidden_layers": int(original["num_layers"]),
        "num_attention_heads": heads,
        "num_key_value_heads": groups,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "attention_dropout": float(original.get("attention_dropout", 0.0) or 0.0),
        "attention_bias": bool(original.get("add_qkv_bias", False) or original.get("add_bias_linear", False)),
        "max_position_embeddings": int(original.get("seq_length", 2048)),
        "rms_norm_eps": float(original.get("layernorm_epsilon", 1e-5)),
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta, "partial_rotary_factor": 0.5},
        "initializer_range": 0.02,
        "use_cache": True,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": [2, SPECIAL_START_ID + GLM_SPECIAL_TOKENS.index("<|user|>"),
                         SPECIAL_START_ID + GLM_SPECIAL_TOKENS.index("<|observation|>")],
        "pad_token_id": int(original.get("pad_token_id", 0) or 0),
        "dtype": str(original.get("torch_dtype") or "float32"),
    }


def _qkv_rows(config: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """Row indices of q, k, v inside `query_key_value`.

    Multi-query (every ChatGLM3): contiguous `[q | k | v]` blocks (`mixed_x_layer.split`). Otherwise
    (`multi_query_attention: false`) the output is viewed as `[heads, 3 * d]` and each head's slice splits into
    `[q_h | k_h | v_h]` (`split_tensor_along_last_dim(mixed_x_layer, 3)`).
    """
    import torch

    heads, groups, d = _geometry(config)
    if config.get("multi_query_attention"):
        q = torch.arange(heads * d)
        k = torch.arange(groups * d) + heads * d
        return q, k, k + groups * d
    per_head = torch.arange(heads * 3 * d).view(heads, 3, d)
    return per_head[:, 0].reshape(-1), per_head[:, 1].reshape(-1), per_head[:, 2].reshape(-1)


def to_native(weights: Mapping[str, Any], original: Mapping[str, Any]) -> StateDict:
    """Original state dict -> GlmForCausalLM's. `query_key_value` splits into q/k/v (weight and bias); the
    `rotary_pos_emb.inv_freq` buffer is dropped (GLM recomputes it, as the original's forward does)."""
    _check_supported(original)
    rows = _qkv_rows(original)
    contiguous = bool(original.get("multi_query_attention"))
    state: StateDict = {}
    for name, tensor in weights.items():
        if name == _INV_FREQ:
            continue
        if name in _TOP_RENAMES:
            state[_TOP_RENAMES[name]] = tensor
            continue
        if not name.startswith(_LAYER_PREFIX):
            raise ValueError(f"unexpected tensor {name} in a ChatGLM3 checkpoint")
        index, rest = name[len(_LAYER_PREFIX):].split(".", 1)
        prefix = f"{_NATIVE_LAYER_PREFIX}{index}."
        if rest in _LAYER_RENAMES:
            state[prefix + _LAYER_RENAMES[rest]] = tensor
        elif rest.startswith("self_attention.query_key_value."):
            kind = rest.rsplit(".", 1)[1]  # weight / bias
            for proj, picked in zip(_QKV, rows):
                part = tensor[int(picked[0]):int(picked[-1]) + 1] if contiguous else tensor.index_select(0, picked)
                state[f"{prefix}self_attn.{proj}.{kind}"] = part
        else:
            raise ValueError(f"unexpected tensor {name} in a ChatGLM3 checkpoint")
    return state


def rotary_inv_freq(original: Mapping[str, Any]) -> Any:
    """The `transformer.rotary_pos_emb.inv_freq` buffer a checkpoint saved by the original carries
    (`RotaryEmbedding.__init__` with dim = kv_channels // 2, in the model's torch_dtype)."""
    import torch

    _, _, head_dim = _geometry(original)
    dim = head_dim // 2
    dtype = getattr(torch, str(original.get("torch_dtype") or "float32"))
    return 1.0 / (10000 ** (torch.arange(0, dim, 2).to(dtype=dtype) / dim))


def to_original(weights: Mapping[str, Any], original: Mapping[str, Any]) -> StateDict:
    """GlmForCausalLM's state dict -> the original layout (q/k/v joined back, inv_freq restored)."""
    import torch

    _check_supported(original)
    renames = {native: name for name, native in _TOP_RENAMES.items()}
    layer_renames = {native: rest for rest, native in _LAYER_RENAMES.items()}
    rows = _qkv_rows(original)
    order = torch.argsort(torch.cat(rows))
    state: StateDict = {}
    pending: dict[tuple[str, str], dict[str, Any]] = {}
    for name, tensor in weights.items():
        if name in renames:
            state[renames[name]] = tensor
            continue
        if not name.startswith(_NATIVE_LAYER_PREFIX):
            raise ValueError(f"unexpected tensor {name} in a native GLM state dict of ChatGLM3")
        index, rest = name[len(_NATIVE_LAYER_PREFIX):].split(".", 1)
        prefix = f"{_LAYER_PREFIX}{index}."
        if rest in layer_renames:
            state[prefix + layer_renames[rest]] = tensor
            continue
        module, kind = rest.rsplit(".", 1)
        proj = module.removeprefix("self_attn.")
        if proj not in _QKV:
            raise ValueError(f"unexpected tensor {name} in a native GLM state dict of ChatGLM3")
        pending.setdefault((prefix, kind), {})[proj] = tensor
    for (prefix, kind), parts in pending.items():
        joined = torch.cat([parts[p] for p in _QKV], 0)
        state[f"{prefix}self_attention.query_key_value.{kind}"] = (
            joined if original.get("multi_query_attention") else joined.index_select(0, order)
        )
    state[_INV_FREQ] = rotary_inv_freq(original)
    return state


def _read_sentencepiece(path: Path) -> Any:
    """The parsed tokenizer.model (protobuf only: sentencepiece itself is not needed)."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(path.read_bytes())
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    expected = (spec.model_type == 2, spec.byte_fallback, norm.name == "identity", norm.add_dummy_prefix,
                not norm.remove_extra_whitespaces, not norm.precompiled_charsmap)
    if not all(expected):
        raise ValueError(f"{path}: not ChatGLM3's sentencepiece model (BPE, byte fallback, identity normaliser, "
                         "dummy prefix, whitespace kept)")
    return proto


def build_tokenizer(folder: Path) -> Any:
    """A fast tokenizer with `ChatGLMTokenizer`'s ids.

    sentencepiece BPE -> tokenizers BPE: the same vocabulary, merges ranked by the merged piece's score (the
    order sentencepiece merges in; its byte-fallback `<0x..>` and control pieces are never merged); the sentencepiece
    normaliser is " " -> "▁" with a "▁" before the text (`add_dummy_prefix`), applied to each piece of text
    between special tokens, as `SPTokenizer.encode` is applied to each part `build_chat_input` joins. The nine
    GLM tokens take ids 64789... in `SPTokenizer`'s order; "sop" / "eop" match only as whole words (so
    "Aesop", "People" stay text). The post-processor adds `[gMASK] sop` (and `</s>` after a pair:
    `build_inputs_with_special_tokens`).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast
    from transformers.tokenization_utils_base import generate_merges

    proto = _read_sentencepiece(Path(folder) / "tokenizer.model")
    pieces = list(proto.pieces)
    vocab = {piece.piece: index for index, piece in enumerate(pieces)}
    # sentencepiece merges the adjacent pair whose merged piece scores highest (bpe_model.cc); only NORMAL pieces
    scores = {piece.piece: piece.score for piece in pieces if piece.type == 1}
    merges = generate_merges(vocab, scores)
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=UNK, fuse_unk=True, byte_fallback=True,
                            dropout=None))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1, right=0)])
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (UNK, BOS, EOS)])
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False, single_word=t in _WORDLIKE)
                                for t in GLM_SPECIAL_TOKENS])
    ids = {token: backend.token_to_id(token) for token in GLM_SPECIAL_TOKENS}
    expected = {token: len(pieces) + i for i, token in enumerate(GLM_SPECIAL_TOKENS)}
    if ids != expected or len(pieces) != SPECIAL_START_ID:
        raise ValueError(f"{folder}: special token ids {ids} differ from ChatGLM3's {expected}")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{PREFIX[0]} {PREFIX[1]} $A",
        pair=f"{PREFIX[0]} {PREFIX[1]} $A $B {EOS}",
        special_tokens=[(t, backend.token_to_id(t)) for t in (*PREFIX, EOS)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK,
        pad_token=UNK,
        eos_token=EOS,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
        extra_special_tokens=list(GLM_SPECIAL_TOKENS),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


FAMILY = LegacyFamily(
    name="chatglm3",
    display="ChatGLM3 (THUDM/chatglm3-6b, -base, -32k)",
    matches=matches,
    native="transformers GlmForCausalLM",
    native_config=native_config,
    to_native=to_native,
    to_original=to_original,
    build_tokenizer=build_tokenizer,
    lora_targets={
        "query_key_value": _QKV,
        "dense": ("o_proj",),
        "dense_h_to_4h": ("gate_up_proj",),
        "dense_4h_to_h": ("down_proj",),
        "output_layer": ("lm_head",),
    },
    conversion=(
        "transformer.encoder.layers.N.self_attention.query_key_value (weight, bias) -> model.layers.N.self_attn."
        "q_proj / k_proj / v_proj (contiguous [q: heads*d | k: groups*d | v: groups*d])",
        "self_attention.dense -> self_attn.o_proj; mlp.dense_h_to_4h ([gate | up]) -> mlp.gate_up_proj; "
        "mlp.dense_4h_to_h -> mlp.down_proj",
        "input_layernorm / post_attention_layernorm kept; encoder.final_layernorm -> model.norm; "
        "embedding.word_embeddings -> model.embed_tokens; output_layer -> lm_head (untied)",
        "rope: first kv_channels/2 dims, interleaved pairs, base 10000 * rope_ratio -> GLM partial_rotary_factor "
        "0.5; rotary_pos_emb.inv_freq dropped (recomputed)",
        "tokenizer: tokenizer.model (sentencepiece BPE, byte fallback) -> tokenizers BPE; [MASK] [gMASK] [sMASK] "
        "sop eop <|system|> <|user|> <|assistant|> <|observation|> = 64789..64797; encode prepends [gMASK] sop; "
        "eos </s> (2), pad <unk> (0), padding left",
        "generation stops on </s>, <|user|>, <|observation|> (eos_token_id list), as the original's chat()",
    ),
)
