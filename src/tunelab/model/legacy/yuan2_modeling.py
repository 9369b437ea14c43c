"""Yuan 2.0 (IEIT Yuan2.0-2B-hf and its larger siblings): a self-contained transformers 5 implementation.

Written by tunelab from the maths of the original `yuan_hf_model.py` (none of its code is used), because no
transformers architecture is equivalent: Yuan 2.0's *localized filtering attention* (LFA) runs the attention
input through two causal convolutions before the query and key projections. This file imports only torch,
transformers and the stdlib, so that it can be written next to a native export (`auto_map`) and loaded by
plain transformers with `trust_remote_code`.

What the original computes, per decoder layer (x = input_layernorm(h), all [batch, seq, hidden]):
- LFA (`LocalizedFiltering._train_forward`): two Conv2d with kernel (2, 1) over the sequence, padded by one
  step on each side and cut back to the sequence length, i.e. causal convolutions of width 2:
  o1[t] = W1a x[t-1] + W1b x[t] + b1 (hidden -> hidden/2), o2[t] = W2a o1[t-1] + W2b o1[t] + b2 (back to
  hidden), with zeros before the first token (for conv2 that is o1[-1] = 0, not b1); then
  lf = RMSNorm(o2 + x) with its own weight and a fixed eps of 1e-6 (`YuanRMSNorm(self.embed_dim)`).
- q_proj and k_proj read lf, v_proj reads x itself (`YuanAttention.forward`). The query and the key of head h
  are consecutive blocks of cat(q_proj(lf), k_proj(lf)) viewed as [heads, 2 * head_dim], split in halves: head
  h takes columns [2h*d, 2h*d + d) as its query and [2h*d + d, 2(h+1)*d) as its key. So the first half of the
  heads get both their query and their key from q_proj, the second half from k_proj. tunelab keeps this
  layout (and the original parameter names) instead of permuting the rows: a LoRA adapter trained here is a
  LoRA adapter of the original model, and the export back is the identity.
- standard rotate-half RoPE, base 10000, on the whole head; softmax attention scaled by 1/sqrt(head_dim).
- MLP `down(gate(x) * silu(up(x)))`: the activation is on up_proj, not on gate_proj (`YuanMLP.forward`).
- tied input / output embeddings; the embedding has `padding_idx = pad_token_id` (77185, <eod>), so the <eod>
  row gets no gradient, as in the original.

Masks (`YuanModel.forward`, `_prepare_decoder_attention_mask_training`): with `reset_attention_mask` (true in
the published configs) the original restarts attention after every <eod> (`eod_token_id`): a token never
attends to a token at or before an <eod> that precedes it. It does so in train and in eval mode (eval takes
the same path because `reset_position_ids` is true) and then IGNORES the attention mask it is given, so a
left-padded row of the original attends to its padding. Positions are not reset at <eod> (the reset
positions are computed and thrown away); the convolutions run across an <eod>.

What tunelab's class does (the decisions):
- the <eod> restart is kept (`reset_attention_mask`), in train and eval alike, as the original computes;
- the attention mask is honoured as well (padding is never attended to), and a token whose predecessor is
  padding starts the convolutions afresh, so a left-padded row computes what the unpadded sequence computes;
- restarting `position_ids` (tunelab's packed and padding-free rows: each example starts at position 0)
  start a new sequence: attention AND both convolutions restart there, so packed examples do not leak into
  each other through the LFA. The original has no such notion (it would run its convolutions and, without an
  <eod>, its attention across the boundary), so the original and this class differ only on packed rows;
- the KV cache is a `DynamicCache` subclass (`TunelabYuan2Cache`) that also carries, per layer, the LFA's
  state (the attention input of the last token and of the one before it, the third tensor of the original's
  cache tuple) and, per row, the segment id of every cached key (for the <eod> restart across decode steps).
  A plain, empty `DynamicCache` (what `generate` creates) is swapped for one on the first forward.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

#: the LFA's own RMSNorm is built without an eps argument in the original (`YuanRMSNorm(self.embed_dim)`)
LFA_NORM_EPS = 1e-6


class TunelabYuan2Config(PretrainedConfig):
    """Yuan 2.0's configuration, in transformers 5's key layout (`rope_parameters`, `eod_token_id`)."""

    model_type = "tunelab_yuan2"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 135040,
        hidden_size: int = 2048,
        intermediate_size: int = 8192,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 32,
        hidden_act: str = "silu",
        max_position_embeddings: int = 8192,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = True,
        rope_parameters: dict[str, Any] | None = None,
        reset_attention_mask: bool = True,
        eod_token_id: int | None = 77185,
        pad_token_id: int | None = 77185,
        bos_token_id: int | None = 77185,
        eos_token_id: int | list[int] | None = 77185,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.head_dim = hidden_size // num_attention_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_parameters = dict(rope_parameters or {"rope_type": "default", "rope_theta": 10000.0})
        if self.rope_parameters.get("rope_type", "default") != "default":
            raise ValueError(f"Yuan 2.0 uses the default RoPE only, not {self.rope_parameters['rope_type']!r}")
        self.reset_attention_mask = reset_attention_mask
        self.eod_token_id = eod_token_id
        kwargs.pop("head_dim", None)
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)


class TunelabYuan2Cache(DynamicCache):
    """`DynamicCache` plus what Yuan 2.0 needs beyond keys and values.

    `lfa_states[layer]`: [batch, 2, hidden], the LFA input of the token before the last (zero where the last
    token started a sequence) and of the last token, all the convolutions need to continue (the original
    cache's third tensor, `inference_hidden_states_memory`). `segments`: [batch, cached length], the segment
    id of every cached key (a new segment after each <eod> and at each sequence start); `last_eod`: [batch],
    whether the last cached token is an <eod> (the next token then opens a segment).
    """

    def __init__(self, config: PretrainedConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        self.lfa_states: dict[int, torch.Tensor] = {}
        self.segments: torch.Tensor | None = None
        self.last_eod: torch.Tensor | None = None

    def _map_rows(self, function: Any) -> None:
        self.lfa_states = {index: function(state) for index, state in self.lfa_states.items()}
        if self.segments is not None:
            self.segments = function(self.segments)
        if self.last_eod is not None:
            self.last_eod = function(self.last_eod)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self._map_rows(lambda tensor: tensor.index_select(0, beam_idx.to(tensor.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._map_rows(lambda tensor: tensor.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self._map_rows(lambda tensor: tensor[indices])

    def reset(self) -> None:
        super().reset()
        self.lfa_states, self.segments, self.last_eod = {}, None, None

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("Yuan 2.0's convolution state cannot be rolled back: assisted / speculative "
                                  "decoding is not supported")

    @property
    def is_croppable(self) -> bool:
        return False


class TunelabYuan2RMSNorm(nn.Module):
    """LLaMA's RMSNorm (`YuanRMSNorm`): normalise in float32, scale by the weight in the input dtype."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden_states.to(dtype)


class TunelabYuan2LocalizedFiltering(nn.Module):
    """The LFA: two width-2 causal convolutions and a residual RMSNorm (module `lf_gate` of the original).

    conv1 / conv2 keep the original's Conv2d parameters ([out, in, 2, 1]) so checkpoints load unchanged; the
    forward computes them as one matmul over [previous step | this step] (weight[..., 0, 0] multiplies the
    previous step, weight[..., 1, 0] this one), which lets a sequence start anywhere in a row: `keep` is 0 at
    a token that starts a sequence, and both the previous input and the previous conv1 output are then zero,
    exactly as at the start of the original's zero-padded convolution.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(hidden_size, hidden_size // 2, (2, 1), stride=(1, 1), padding=(1, 0))
        self.conv2 = nn.Conv2d(hidden_size // 2, hidden_size, (2, 1), stride=(1, 1), padding=(1, 0))
        self.output_layernorm = TunelabYuan2RMSNorm(hidden_size, eps=LFA_NORM_EPS)

    @staticmethod
    def _taps(conv: nn.Conv2d) -> torch.Tensor:
        """[out, 2 * in]: the previous-step tap, then the current-step tap."""
        return torch.cat([conv.weight[:, :, 0, 0], conv.weight[:, :, 1, 0]], dim=1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, state: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the filtered states [batch, seq, hidden], the new state [batch, 2, hidden]).

        keep: [batch, seq, 1], 0 where a sequence starts; state: the cache's [batch, 2, hidden] or None."""
        w1, w2 = self._taps(self.conv1), self._taps(self.conv2)
        if state is None:
            previous = F.pad(x[:, :-1], (0, 0, 1, 0))
            conv1_before = x.new_zeros(x.shape[0], 1, w1.shape[0])
        else:
            previous = torch.cat([state[:, 1:], x[:, :-1]], dim=1)
            conv1_before = F.linear(state.reshape(state.shape[0], 1, -1), w1, self.conv1.bias)
        previous = previous * keep
        conv1 = F.linear(torch.cat([previous, x], dim=-1), w1, self.conv1.bias)
        conv1_previous = torch.cat([conv1_before, conv1[:, :-1]], dim=1) * keep
        conv2 = F.linear(torch.cat([conv1_previous, conv1], dim=-1), w2, self.conv2.bias)
        new_state = torch.stack([previous[:, -1], x[:, -1]], dim=1)
        return self.output_layernorm(conv2 + x), new_state


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class TunelabYuan2Attention(nn.Module):
    """LFA attention: q / k from the filtered states (per-head blocks of cat(q_proj, k_proj)), v from x."""

    def __init__(self, config: TunelabYuan2Config, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.lf_gate = TunelabYuan2LocalizedFiltering(hidden)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        keep: torch.Tensor,
        cache: TunelabYuan2Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        heads, dim = self.num_heads, self.head_dim
        value = self.v_proj(hidden_states).view(batch, length, heads, dim).transpose(1, 2)
        state = cache.lfa_states.get(self.layer_idx) if cache is not None else None
        filtered, new_state = self.lf_gate(hidden_states, keep, state)
        if cache is not None:
            cache.lfa_states[self.layer_idx] = new_state
        query_key = torch.cat([self.q_proj(filtered), self.k_proj(filtered)], dim=-1).view(batch, length, heads, 2 * dim)
        query, key = (part.transpose(1, 2) for part in query_key.split(dim, dim=-1))
        cos, sin = position_embeddings
        query = query * cos + rotate_half(query) * sin
        key = key * cos + rotate_half(key) * sin
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        weights = None
        if self.config._attn_implementation == "eager" or output_attentions:
            scores = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(dim) + attention_mask
            scores = torch.max(scores, torch.tensor(torch.finfo(scores.dtype).min, device=scores.device))
            weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            output = torch.matmul(weights, value)
        else:
            output = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                    scale=1.0 / math.sqrt(dim))
        output = output.transpose(1, 2).reshape(batch, length, heads * dim)
        return self.o_proj(output), weights if output_attentions else None


class TunelabYuan2MLP(nn.Module):
    """down(gate(x) * act(up(x))): the activation sits on up_proj (`YuanMLP.forward`)."""

    def __init__(self, config: TunelabYuan2Config) -> None:
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.gate_proj(x) * self.act_fn(self.up_proj(x)))


class TunelabYuan2DecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: TunelabYuan2Config, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = TunelabYuan2Attention(config, layer_idx)
        self.mlp = TunelabYuan2MLP(config)
        self.input_layernorm = TunelabYuan2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = TunelabYuan2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        keep: torch.Tensor | None = None,
        cache: TunelabYuan2Cache | None = None,
        output_attentions: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.self_attn(self.input_layernorm(hidden_states), attention_mask, position_embeddings,
                                           keep, cache=cache, output_attentions=output_attentions)
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, weights


class TunelabYuan2PreTrainedModel(PreTrainedModel):
    config_class = TunelabYuan2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TunelabYuan2DecoderLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = False
    _can_compile_fullgraph = False


def _rope(config: TunelabYuan2Config, position_ids: torch.Tensor, dtype: torch.dtype
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos / sin [batch, 1, seq, head_dim] of rotate-half RoPE, computed in float32 (`YuanRotaryEmbedding`)."""
    dim = config.hidden_size // config.num_attention_heads
    theta = float(config.rope_parameters.get("rope_theta", 10000.0))
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float32) / dim))
    freqs = position_ids[:, :, None].to(torch.float32) * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    return emb.cos().to(dtype), emb.sin().to(dtype)


class TunelabYuan2Model(TunelabYuan2PreTrainedModel):
    def __init__(self, config: TunelabYuan2Config) -> None:
        super().__init__(config)
        pad = config.pad_token_id
        self.padding_idx = pad if pad is not None and 0 <= pad < config.vocab_size else None
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(TunelabYuan2DecoderLayer(config, index) for index in range(config.num_hidden_layers))
        self.norm = TunelabYuan2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def _boundaries(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
        padding: torch.Tensor,
        cache: TunelabYuan2Cache | None,
        past: int,
        dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the additive attention mask [batch, 1, seq, past + seq], the LFA's keep [batch, seq, 1]).

        A sequence starts at position 0 (packed rows), at the first token, and after padding; attention also
        restarts after an <eod> when `reset_attention_mask`. Keys are visible to a query when they are not
        after it, not padding and in its segment (segment ids count the restarts along the row)."""
        batch, length = position_ids.shape
        device = position_ids.device
        starts = position_ids == 0
        after_padding = torch.cat([torch.ones_like(padding[:, :1]), padding[:, :-1]], dim=1)[:, past:] == 0
        starts = starts | after_padding
        if past == 0:
            starts[:, 0] = True
        restarts = starts.clone()
        eod = self.config.eod_token_id
        if self.config.reset_attention_mask and eod is not None and input_ids is not None:
            is_eod = input_ids == eod
            before = cache.last_eod if cache is not None and cache.last_eod is not None and past else \
                torch.zeros(batch, dtype=torch.bool, device=device)
            restarts = restarts | torch.cat([before[:, None], is_eod[:, :-1]], dim=1)
            if cache is not None:
                cache.last_eod = is_eod[:, -1]
        elif cache is not None:
            cache.last_eod = torch.zeros(batch, dtype=torch.bool, device=device)
        previous = cache.segments if cache is not None and cache.segments is not None and past else None
        offset = previous[:, -1:] if previous is not None else torch.zeros(batch, 1, dtype=torch.long, device=device)
        query_segments = offset + torch.cumsum(restarts.long(), dim=1)
        key_segments = query_segments if previous is None else torch.cat([previous, query_segments], dim=1)
        if cache is not None:
            cache.segments = key_segments
        query_index = torch.arange(past, past + length, device=device)
        key_index = torch.arange(past + length, device=device)
        allowed = (key_index[None, :] <= query_index[:, None])[None]
        allowed = allowed & (key_segments[:, None, :] == query_segments[:, :, None]) & padding[:, None, :].bool()
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
        return mask[:, None], (~starts)[..., None].to(dtype)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: DynamicCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        past_key_values: DynamicCache | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        cache = cache if cache is not None else past_key_values
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            use_cache = False
        if not use_cache:
            cache = None
        elif not isinstance(cache, TunelabYuan2Cache):
            if cache is not None and cache.get_seq_length() > 0:
                raise ValueError("Yuan 2.0 needs its own cache (TunelabYuan2Cache: it carries the convolution "
                                 "state), not a filled " + type(cache).__name__)
            cache = TunelabYuan2Cache(config=self.config)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=device)[None].expand(batch, length)
        position_ids = position_ids.view(-1, length).expand(batch, length)
        if attention_mask is None:
            padding = torch.ones(batch, past + length, dtype=torch.long, device=device)
        else:
            if attention_mask.dim() != 2:
                raise ValueError("Yuan 2.0 takes a 2-D attention mask [batch, keys]; it builds the 4-D mask itself")
            padding = attention_mask.to(device)
            if padding.shape[1] == length and past:
                padding = torch.cat([padding.new_ones(batch, past), padding], dim=1)
        mask, keep = self._boundaries(input_ids, position_ids, padding, cache, past, inputs_embeds.dtype)
        position_embeddings = _rope(self.config, position_ids, inputs_embeds.dtype)

        hidden_states = inputs_embeds
        all_hidden: tuple[torch.Tensor, ...] = ()
        all_attentions: tuple[torch.Tensor, ...] = ()
        for layer in self.layers:
            if output_hidden_states:
                all_hidden += (hidden_states,)
            hidden_states, weights = layer(hidden_states, attention_mask=mask, position_embeddings=position_embeddings,
                                           keep=keep, cache=cache, output_attentions=output_attentions)
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden += (hidden_states,)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache,
                                       hidden_states=all_hidden or None, attentions=all_attentions or None)


class TunelabYuan2ForCausalLM(TunelabYuan2PreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TunelabYuan2Config) -> None:
        super().__init__(config)
        self.model = TunelabYuan2Model(config)
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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: DynamicCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: DynamicCache | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache if cache is not None else past_key_values, inputs_embeds=inputs_embeds,
                             use_cache=use_cache, output_attentions=output_attentions,
                             output_hidden_states=output_hidden_states)
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        result = CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache,
                                        hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return result if return_dict is not False else result.to_tuple()


__all__ = ["TunelabYuan2Cache", "TunelabYuan2Config", "TunelabYuan2ForCausalLM", "TunelabYuan2Model",
           "TunelabYuan2PreTrainedModel"]
