"""Qwen-1 (Qwen-7B / 14B / 1_8B and their -Chat, -Int4 checkpoints) loaded as transformers' Qwen2.

Qwen-1 ships `modeling_qwen.py` (`QWenLMHeadModel`, model_type `qwen`), written for transformers 4.x; from 4.57
it no longer imports. Its layers are, after a weight-layout conversion, exactly transformers' `Qwen2ForCausalLM`:
- pre-norm RMSNorm blocks (`QWenBlock`: `ln_1` -> attention -> residual, `ln_2` -> MLP -> residual; `ln_f`), the
  norm computed in float32 and cast back before the weight multiplies, as `Qwen2RMSNorm` does;
- `QWenAttention.c_attn` is one linear WITH a bias (built without `bias=` although `no_bias: true`: `no_bias`
  only reaches `c_proj` and the MLP) whose output splits into contiguous `[q | k | v]` blocks of
  `kv_channels * heads` each (`mixed_x_layer.split(self.split_size, dim=2)`), every head `kv_channels` wide,
  no grouped kv: Qwen2's biased q/k/v and unbiased o_proj;
- rotary embedding over the whole head, `rotate_half` style (`_rotate_half` / `apply_rotary_pos_emb`), base
  `rotary_emb_base`, scores scaled by 1/sqrt(head_dim), causal, additive padding mask: Qwen2's default rope;
- `QWenMLP.forward` is `c_proj(w1(x) * silu(w2(x)))` with width `intermediate_size // 2`: the silu sits on `w2`,
  so `w2` is Qwen2's `gate_proj`, `w1` its `up_proj` (the names suggest the opposite) and `intermediate_size` halves.

What Qwen2 does not have, and what tunelab does about it (choice (a) of issue 25): `QWenModel.forward` and
`QWenAttention.forward` switch on two long-context tricks only when `not self.training`, and only once the
sequence is longer than `seq_length`:
- dynamic NTK: the rope base becomes `base * alpha ** (d / (d - 2))` with `alpha = 2 ** ceil(log2(L / seq_length)
  + 1) - 1` (`get_ntk_alpha`), for the WHOLE sequence (every position moves, not only the ones past seq_length),
  per row from the mask's true length in a padded batch, and frozen at the prefill's alpha during generation;
- logn attention: queries at position p >= seq_length are multiplied by log_{seq_length}(p + 1).
Neither exists in Qwen2 (its "dynamic" rope uses another, continuous formula; logn scaling exists nowhere in
transformers), so the native model computes what the original computes in TRAIN mode always, and what it
computes in eval mode for every input up to `seq_length` tokens (8192 for Qwen-7B / 1_8B, 2048 for Qwen-14B).
Fine-tuning, the thing tunelab does, is exact; inference past `seq_length` runs without the extrapolation tricks
(tests/model/legacy/test_qwen.py measures that difference on the fixture's 40-token probe, seq_length 32).

The tokenizer (`tokenization_qwen.py`) is tiktoken BPE over `qwen.tiktoken` (base64 token, rank per line), NFC
first, with its own pre-tokenizer pattern (`PAT_STR`: single digits, unlike GPT-4's `\\p{N}{1,3}`) and 208
special tokens from id 151643 (`SPECIAL_TOKENS`) that `encode` recognises inside ordinary text. It defines no
bos / eos / pad; tunelab sets eos = pad = `<|endoftext|>` (151643), the id the checkpoints' generation_config.json
names for both; the -Chat models stop on `<|im_end|>`, which is the chat template's business.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.model.legacy.family import ConfigDict, LegacyFamily, StateDict

#: `tokenization_qwen.py` PAT_STR: the pre-tokenizer split applied before BPE
PRETOKENIZE_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
#: `tokenization_qwen.py` SPECIAL_TOKENS: these, in this order, take the ids from SPECIAL_START_ID on
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END, *(f"<|extra_{i}|>" for i in range(205)))
SPECIAL_START_ID = 151643
#: `QWenLMHeadModel.chat` passes this system prompt to make_context when the caller gives none
CHAT_DEFAULT_SYSTEM = "You are a helpful assistant."
#: `qwen_generation_utils.make_context` (chatml) as a chat template: a system turn always comes first (the
#: default one above when the conversation has none), turns are joined by "\n", the prompt ends "assistant\n"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + CHAT_DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# original module path (inside transformer.h.N) -> native path (inside model.layers.N); c_attn is split apart
_LAYER_RENAMES = {
    "ln_1": "input_layernorm",
    "ln_2": "post_attention_layernorm",
    "attn.c_proj": "self_attn.o_proj",
    "mlp.w1": "mlp.up_proj",
    "mlp.w2": "mlp.gate_proj",
    "mlp.c_proj": "mlp.down_proj",
}
_TOP_RENAMES = {
    "transformer.wte": "model.embed_tokens",
    "transformer.ln_f": "model.norm",
    "lm_head": "lm_head",
}
_QKV = ("q_proj", "k_proj", "v_proj")
# non-persistent buffers older Qwen-1 saves may carry (`_keys_to_ignore_on_load_*` of modeling_qwen.py)
_BUFFERS = re.compile(r"transformer\.h\.\d+\.attn\.(rotary_emb\.inv_freq|masked_bias)$")
_LAYER_KEY = re.compile(r"transformer\.h\.(\d+)\.(.+)\.([a-z_]+)$")
_TOP_KEY = re.compile(r"(transformer\.wte|transformer\.ln_f|lm_head)\.([a-z_]+)$")


def matches(config: Mapping[str, Any]) -> bool:
    """Qwen-1's config.json: model_type `qwen` (Qwen2 and later say `qwen2`...), or its class / auto_map names."""
    auto_map = config.get("auto_map") or {}
    return (
        config.get("model_type") == "qwen"
        or "QWenLMHeadModel" in (config.get("architectures") or [])
        or str(auto_map.get("AutoModelForCausalLM", "")).endswith("modeling_qwen.QWenLMHeadModel")
    )


def _check_supported(config: Mapping[str, Any]) -> None:
    """Refuse the layouts Qwen2 cannot express exactly (no released Qwen-1 checkpoint uses them)."""
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    problems = []
    if not config.get("no_bias", True):
        problems.append("no_bias: false (biased c_proj / w1 / w2; Qwen2's o_proj and MLP have no bias)")
    if float(config.get("rotary_pct", 1.0)) != 1.0:
        problems.append(f"rotary_pct: {config['rotary_pct']} (Qwen2 rotates the whole head)")
    if config.get("kv_channels", hidden // heads) * heads != hidden:
        problems.append(
            "kv_channels * num_attention_heads != hidden_size (the original code splits c_attn by hidden_size)"
        )
    if float(config.get("emb_dropout_prob", 0.0)) != 0.0:
        problems.append(f"emb_dropout_prob: {config['emb_dropout_prob']} (Qwen2 has no embedding dropout)")
    if problems:
        raise ValueError("this Qwen-1 config has no exact Qwen2 equivalent: " + "; ".join(problems))


def _dtype(config: Mapping[str, Any]) -> str | None:
    """The checkpoint's dtype: `torch_dtype` (all released configs say bfloat16), else the bf16/fp16/fp32 flags."""
    dtype = config.get("torch_dtype") or config.get("dtype")
    if dtype:
        return str(dtype).removeprefix("torch.")
    for flag, name in (("bf16", "bfloat16"), ("fp16", "float16"), ("fp32", "float32")):
        if config.get(flag):
            return name
    return None


def native_config(config: Mapping[str, Any]) -> ConfigDict:
    """The Qwen2 config.json. `intermediate_size` halves (QWenMLP builds w1 / w2 `intermediate_size // 2` wide);
    `seq_length`, `use_dynamic_ntk`, `use_logn_attn` have no Qwen2 key (the module docstring says what that means);
    eos = pad = 151643 as in generation_config.json; no bos (Qwen-1 has none)."""
    _check_supported(config)
    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    native: ConfigDict = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "intermediate_size": config["intermediate_size"] // 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": config.get("kv_channels", config["hidden_size"] // heads),
        "hidden_act": "silu",
        "max_position_embeddings": config.get("max_position_embeddings", 8192),
        "initializer_range": config.get("initializer_range", 0.02),
        "rms_norm_eps": config.get("layer_norm_epsilon", 1e-6),
        "use_cache": config.get("use_cache", True),
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", False)),
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(config.get("rotary_emb_base", 10000)),
        },
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": layers,
        "layer_types": ["full_attention"] * layers,
        "attention_dropout": float(config.get("attn_dropout_prob", 0.0)),
        "bos_token_id": None,
        "eos_token_id": SPECIAL_START_ID,
        "pad_token_id": SPECIAL_START_ID,
    }
    dtype = _dtype(config)
    if dtype:
        native["dtype"] = dtype
    if config.get("quantization_config"):
        native["quantization_config"] = dict(config["quantization_config"])
    return native


def _gptq_bits(config: Mapping[str, Any]) -> int:
    return int((config.get("quantization_config") or {}).get("bits", 4))


def _split_c_attn(suffix: str, tensor: Any, config: Mapping[str, Any]) -> list[Any]:
    """c_attn's output dim cut into its [q | k | v] thirds, for a float linear or an auto-gptq one.

    auto-gptq (Qwen-*-Int4) stores a linear as `qweight` [in*bits/32, out] int32 (input dim packed), `qzeros`
    [groups, out*bits/32] int32 (OUTPUT dim packed, bits per zero point), `scales` [groups, out], `g_idx` [in]
    (input channel -> group, shared by all outputs) and `bias` [out]: the output dim is dim 0 of weight / bias,
    dim 1 of qweight / scales, packed dim 1 of qzeros; g_idx belongs to every piece."""
    if suffix == "g_idx":
        return [tensor.clone() for _ in _QKV]
    dim = 0 if suffix in ("weight", "bias") else 1
    size = tensor.shape[dim]
    if size % 3:
        raise ValueError(f"c_attn.{suffix} has {size} outputs, not three equal q / k / v blocks")
    return [piece.clone().contiguous() for piece in tensor.split(size // 3, dim=dim)]


def _join_c_attn(suffix: str, pieces: list[Any]) -> Any:
    """The inverse of `_split_c_attn` (g_idx: the three copies must agree)."""
    import torch

    if suffix == "g_idx":
        if not all(torch.equal(pieces[0], piece) for piece in pieces[1:]):
            raise ValueError("q / k / v g_idx differ: they cannot be joined into one c_attn")
        return pieces[0].clone()
    dim = 0 if suffix in ("weight", "bias") else 1
    return torch.cat(pieces, dim=dim)


def to_native(weights: Mapping[str, Any], config: Mapping[str, Any]) -> StateDict:
    """Original names -> Qwen2 names (module docstring for the facts); c_attn split into q / k / v.
    Works for float checkpoints and auto-gptq ones (every parameter suffix of a module follows its module)."""
    _check_supported(config)
    if _gptq_bits(config) * (config["hidden_size"]) % 32 and any(k.endswith(".qzeros") for k in weights):
        raise ValueError("GPTQ qzeros of c_attn cannot be cut at a q / k / v boundary inside a packed int32")
    native: StateDict = {}
    for key, tensor in weights.items():
        if _BUFFERS.match(key):
            continue
        top = _TOP_KEY.match(key)
        if top:
            native[f"{_TOP_RENAMES[top.group(1)]}.{top.group(2)}"] = tensor
            continue
        layer = _LAYER_KEY.match(key)
        if not layer:
            raise KeyError(f"unexpected Qwen-1 weight {key!r}")
        index, module, suffix = layer.groups()
        prefix = f"model.layers.{index}"
        if module == "attn.c_attn":
            for name, piece in zip(_QKV, _split_c_attn(suffix, tensor, config)):
                native[f"{prefix}.self_attn.{name}.{suffix}"] = piece
        elif module in _LAYER_RENAMES:
            native[f"{prefix}.{_LAYER_RENAMES[module]}.{suffix}"] = tensor
        else:
            raise KeyError(f"unexpected Qwen-1 weight {key!r}")
    return native


def to_original(weights: Mapping[str, Any], config: Mapping[str, Any]) -> StateDict:
    """Qwen2 names -> the original names, q / k / v joined back into c_attn (`export_format: original`)."""
    layer_back = {native: original for original, native in _LAYER_RENAMES.items()}
    top_back = {native: original for original, native in _TOP_RENAMES.items()}
    original: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    pattern = re.compile(r"model\.layers\.(\d+)\.(.+)\.([a-z_]+)$")
    for key, tensor in weights.items():
        module, _, suffix = key.rpartition(".")
        if module in top_back:
            original[f"{top_back[module]}.{suffix}"] = tensor
            continue
        layer = pattern.match(key)
        if not layer:
            raise KeyError(f"unexpected Qwen2 weight {key!r}")
        index, path, suffix = layer.groups()
        if path.startswith("self_attn.") and path.removeprefix("self_attn.") in _QKV:
            qkv.setdefault((index, suffix), {})[path.removeprefix("self_attn.")] = tensor
        elif path in layer_back:
            original[f"transformer.h.{index}.{layer_back[path]}.{suffix}"] = tensor
        else:
            raise KeyError(f"unexpected Qwen2 weight {key!r}")
    for (index, suffix), parts in qkv.items():
        if set(parts) != set(_QKV):
            raise KeyError(f"layer {index}: {suffix} of q / k / v incomplete ({sorted(parts)})")
        original[f"transformer.h.{index}.attn.c_attn.{suffix}"] = _join_c_attn(
            suffix, [parts[n] for n in _QKV]
        )
    return original


def read_ranks(path: Path) -> dict[bytes, int]:
    """`qwen.tiktoken`: one `base64(token bytes) rank` per line (tokenization_qwen.py `_load_tiktoken_bpe`)."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _vocab_and_merges(ranks: Mapping[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """tiktoken ranks as byte-level BPE: vocab in GPT-2's byte-to-unicode alphabet, and a merge (a, b) for every
    split of a token into two tokens, ordered by the merged token's rank (tiktoken merges the adjacent pair whose
    concatenation has the lowest rank), ties by the pieces' ranks - transformers' TikTokenConverter does the same."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(alphabet[byte] for byte in token)

    vocab = {as_text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return vocab, [(as_text(left), as_text(right)) for _, _, _, left, right in merges]


def build_tokenizer(folder: Path) -> Any:
    """A PreTrainedTokenizerFast with tokenization_qwen.py's ids: NFC, PAT_STR split, byte-level BPE with the
    whole-piece shortcut (tiktoken returns a piece that is itself a token without merging: `ignore_merges`), the
    208 special tokens at 151643.. recognised anywhere in text, eos = pad = <|endoftext|>, no bos, and the
    make_context chat template (`CHAT_TEMPLATE`)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    ranks = read_ranks(folder / "qwen.tiktoken")
    if sorted(ranks.values()) != list(range(SPECIAL_START_ID)):
        raise ValueError(f"{folder / 'qwen.tiktoken'}: ranks are not 0..{SPECIAL_START_ID - 1}")
    vocab, merges = _vocab_and_merges(ranks)
    backend = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=True))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(
        [AddedToken(token, normalized=False, special=True) for token in SPECIAL_TOKENS]
    )
    settings = {}
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        settings = json.loads(config_file.read_text(encoding="utf-8"))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        model_max_length=settings.get("model_max_length", 32768),
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


FAMILY = LegacyFamily(
    name="qwen",
    display="Qwen-1 (Qwen-7B / 14B / 1.8B, -Chat)",
    matches=matches,
    native="transformers Qwen2ForCausalLM",
    native_config=native_config,
    to_native=to_native,
    to_original=to_original,
    build_tokenizer=build_tokenizer,
    lora_targets={
        "c_attn": ("q_proj", "k_proj", "v_proj"),
        "c_proj": ("o_proj", "down_proj"),
        "w1": ("up_proj",),
        "w2": ("gate_proj",),
        "lm_head": ("lm_head",),
    },
    conversion=(
        "transformer.h.N.attn.c_attn (weight, bias) -> model.layers.N.self_attn.q_proj / k_proj / v_proj (contiguous thirds)",
        "attn.c_proj -> self_attn.o_proj; mlp.w1 -> mlp.up_proj; mlp.w2 -> mlp.gate_proj (silu is on w2); "
        "mlp.c_proj -> mlp.down_proj; intermediate_size halves",
        "ln_1 / ln_2 / ln_f -> input_layernorm / post_attention_layernorm / model.norm; wte -> model.embed_tokens",
        "dynamic NTK and logn attention (eval mode, inputs longer than seq_length) are not reproduced: "
        "train mode exact, eval exact up to seq_length",
        "tokenizer: qwen.tiktoken ranks -> byte-level BPE (PAT_STR, NFC), 208 special tokens from 151643; "
        "eos = pad = <|endoftext|>",
    ),
)
