"""Baichuan2-13B (ALiBi) as a model class of its own, for transformers 5: no transformers architecture is
exactly equivalent (Llama-style blocks, but no rotary embedding and an ALiBi bias with Baichuan's slopes).

SELF-CONTAINED on purpose: it imports only torch, transformers and the stdlib, because tunelab writes this
file next to a native export (with an `auto_map`) so that plain transformers reloads the export with
`trust_remote_code=True`. Written from the maths of the original `modeling_baichuan.py` (Baichuan2-13B-Chat);
none of its code is used.

The maths (float32-exact to the original at 1e-4, see tests/model/legacy/test_baichuan2.py):
- block: x + o_proj(attn(RMSNorm(x))), then x + down_proj(silu(gate_proj(h)) * up_proj(h)) with h = RMSNorm(x);
  q / k / v / o projections and the MLP have no bias; a final RMSNorm; an untied head;
- attention scores q·k / sqrt(head_dim) plus an ALiBi bias slope_h · (j - i) for key j and query i (j <= i),
  with the slopes of `alibi_slopes` (the original's `_get_interleave`);
- the head: the original's NormHead divides each row by its L2 norm in every forward. The converter stores
  the normalised rows, so `lm_head` here is a plain Linear (see tunelab/model/legacy/baichuan2.py).

Where tunelab differs from the original, on purpose:
- the original builds slope·(j - i) in train mode but slope·j (a cached `future_mask`) in eval mode. The two
  differ by slope·i, the same for every key of a query row, which softmax ignores: this class uses the
  relative form in both modes (it is the one that stays right with a KV cache and with packed rows);
- the original has no notion of packed rows: tunelab's padding-free batches (one row, restarting
  `position_ids`, no attention mask) would attend across examples. Here, when no attention mask is given and
  nothing is cached, example boundaries are read from `position_ids` (a position that is not the previous
  one + 1 starts a new example) and attention stays inside each example; ALiBi distances are index
  distances, which equal position distances inside an example;
- a 2-D `attention_mask` is read as the original reads it: query i may see key j when mask[i] == mask[j] and
  mask[j] > 0. For a 0/1 padding mask that is ordinary padding; larger values act as segment ids.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

MODEL_TYPE = "tunelab_baichuan2_alibi"

# transformers 5 renamed the outputs' `past_key_values` field to `cache` in a minor release: follow the one installed
_CACHE_FIELD = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


class TunelabBaichuan2AlibiConfig(PretrainedConfig):
    """The native config of a Baichuan2-13B checkpoint. `max_position_embeddings` is the original's
    `model_max_length` (ALiBi itself has no length limit; it is kept for tools that read it)."""

    model_type = MODEL_TYPE
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    vocab_size: int = 125696
    hidden_size: int = 5120
    intermediate_size: int = 13696
    num_hidden_layers: int = 40
    num_attention_heads: int = 40
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi slopes as Baichuan2-13B uses them (original: modeling_baichuan.py, `_get_interleave`).

    For a power of two n: 2^(-8/n), 2^(-16/n), ... (the geometric sequence of Press et al.'s ALiBi).
    Otherwise: the slopes of the largest power of two p < n, followed by every other slope of 2p
    (the 1st, 3rd, ...), n - p of them: interleaved, not the first n - p of 2p.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


def attention_bias(
    num_heads: int,
    query_length: int,
    past_length: int,
    *,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The additive attention bias [batch or 1, heads, query, key]: slope·(j - i) where key j may be seen by
    query i, the dtype's minimum where not (finite, so fully masked rows, e.g. padding queries, stay NaN-free).

    Which keys a query sees: causal (j <= i); with a 2-D `attention_mask` ([batch, past + query]) also
    mask[j] > 0 and mask[j] == mask[i] (the original's reading: padding, or segment ids); with no mask, no
    cache and `position_ids`, only keys of the same packed example (a new example starts where a position is
    not the previous one + 1, as transformers' `find_packed_sequence_indices` reads packed rows).
    The bias is computed in float32 (the original's `torch.Tensor` slopes times integer distances) and cast.
    """
    key_length = past_length + query_length
    query_index = torch.arange(past_length, key_length, device=device)
    key_index = torch.arange(key_length, device=device)
    slopes = torch.tensor(alibi_slopes(num_heads), dtype=torch.float32, device=device)
    distance = (key_index[None, :] - query_index[:, None]).to(torch.float32)
    bias = slopes[:, None, None] * distance  # [heads, query, key]
    allowed = (key_index[None, :] <= query_index[:, None])[None, None]  # [1, 1, query, key]
    if attention_mask is not None:
        if attention_mask.dim() != 2:
            raise ValueError(
                f"{MODEL_TYPE} takes a 2-D attention_mask [batch, length], got {tuple(attention_mask.shape)}"
            )
        keys = attention_mask[:, -key_length:].to(device)
        queries = keys[:, past_length:]
        allowed = (
            allowed & (keys > 0)[:, None, None, :] & (queries[:, None, :, None] == keys[:, None, None, :])
        )
    elif position_ids is not None and past_length == 0:
        step = torch.diff(position_ids.to(device), prepend=position_ids[:, :1].to(device) - 1, dim=-1)
        example = (step != 1).cumsum(-1)  # [batch, query]
        allowed = allowed & (example[:, None, :, None] == example[:, None, None, :])
    bias = bias[None].masked_fill(~allowed, torch.finfo(torch.float32).min)
    return bias.to(dtype) if dtype != torch.float32 else bias


class TunelabBaichuan2AlibiRMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) in float32, back in the input dtype, times the weight (the original's RMSNorm)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        hidden = hidden_states.to(torch.float32)
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden.to(dtype)


class TunelabBaichuan2AlibiMLP(nn.Module):
    def __init__(self, config: TunelabBaichuan2AlibiConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class TunelabBaichuan2AlibiAttention(nn.Module):
    """Multi-head attention (no GQA, no bias) with an additive ALiBi bias; `sdpa` passes the bias as
    `attn_mask`, `eager` adds it to the scores and softmaxes in float32."""

    def __init__(self, config: TunelabBaichuan2AlibiConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        if self.head_dim * self.num_heads != config.hidden_size:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not divisible by num_attention_heads {self.num_heads}"
            )
        width = self.num_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.o_proj = nn.Linear(width, config.hidden_size, bias=False)

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor, cache: Cache | None = None
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        if self.config._attn_implementation == "eager":
            scores = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(self.head_dim) + attention_bias
            probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            output = torch.matmul(probs, value)
        else:
            output = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_bias, scale=self.head_dim**-0.5
            )
        return self.o_proj(output.transpose(1, 2).reshape(batch, length, -1))


class TunelabBaichuan2AlibiDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: TunelabBaichuan2AlibiConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = TunelabBaichuan2AlibiAttention(config, layer_idx)
        self.mlp = TunelabBaichuan2AlibiMLP(config)
        self.input_layernorm = TunelabBaichuan2AlibiRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = TunelabBaichuan2AlibiRMSNorm(
            config.hidden_size, eps=config.rms_norm_eps
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
    ) -> torch.Tensor:
        hidden_states = hidden_states + self.self_attn(
            self.input_layernorm(hidden_states), attention_bias, cache
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class TunelabBaichuan2AlibiPreTrainedModel(PreTrainedModel):
    config_class = TunelabBaichuan2AlibiConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TunelabBaichuan2AlibiDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False  # flash kernels take no additive bias
    _supports_flex_attn = False
    _supports_attention_backend = False


class TunelabBaichuan2AlibiModel(TunelabBaichuan2AlibiPreTrainedModel):
    def __init__(self, config: TunelabBaichuan2AlibiConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [TunelabBaichuan2AlibiDecoderLayer(config, i) for i in range(config.num_hidden_layers)]
        )
        self.norm = TunelabBaichuan2AlibiRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if not use_cache:
            cache = None
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        past_length = cache.get_seq_length() if cache is not None else 0
        if position_ids is not None and position_ids.dim() == 1:
            position_ids = position_ids[None]
        if position_ids is not None and position_ids.shape[0] != inputs_embeds.shape[0]:
            position_ids = position_ids.expand(inputs_embeds.shape[0], -1)
        bias = attention_bias(
            self.config.num_attention_heads,
            inputs_embeds.shape[1],
            past_length,
            attention_mask=attention_mask,
            position_ids=position_ids,
            dtype=inputs_embeds.dtype,
            device=inputs_embeds.device,
        )
        hidden_states = inputs_embeds
        all_hidden: list[torch.Tensor] = []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states = layer(hidden_states, attention_bias=bias, cache=cache, use_cache=use_cache)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            # the last entry is after the final norm, as in transformers' models
            all_hidden.append(hidden_states)
        output = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            **{_CACHE_FIELD: cache},
        )
        return output if return_dict is not False else output.to_tuple()


class TunelabBaichuan2AlibiForCausalLM(TunelabBaichuan2AlibiPreTrainedModel, GenerationMixin):
    def __init__(self, config: TunelabBaichuan2AlibiConfig) -> None:
        super().__init__(config)
        self.model = TunelabBaichuan2AlibiModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def get_decoder(self) -> TunelabBaichuan2AlibiModel:
        return self.model

    def set_decoder(self, decoder: TunelabBaichuan2AlibiModel) -> None:
        self.model = decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        kwargs.pop("output_attentions", None)  # attention weights are not returned (sdpa computes none)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )
        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            **{_CACHE_FIELD: getattr(outputs, _CACHE_FIELD)},
        )
        return output if return_dict is not False else output.to_tuple()


__all__ = [
    "MODEL_TYPE",
    "TunelabBaichuan2AlibiConfig",
    "TunelabBaichuan2AlibiForCausalLM",
    "TunelabBaichuan2AlibiModel",
    "TunelabBaichuan2AlibiPreTrainedModel",
    "alibi_slopes",
    "attention_bias",
]
