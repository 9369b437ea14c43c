"""TeleChat2 (Tele-AI TeleChat2-7B) as transformers' Llama with TeleChat2's own rotary embedding.

Self-contained on purpose (torch, transformers and the stdlib only): tunelab writes this file next to a native
export, whose config.json names it in `auto_map`, so plain transformers reloads the export with
`trust_remote_code=True`. tunelab itself registers the classes with the Auto classes (`register`).

TeleChat2's decoder IS Llama's: pre-norm RMSNorm blocks, GQA attention with `rotate_half` rope, a SiLU-gated
MLP, a final RMSNorm and an untied head. Everything here is Llama's own code except two things the original
(`modeling_telechat2.py`, the file Tele-AI publishes for LLaMA-Factory training) does differently:

1. The rotary embedding (`RotaryEmbedding.forward` of the original). For a sequence of length L (the whole
   key length, past included) with L' = max(L, training_seqlen):
     alpha  = max(2 ** ceil(log2(L' / base_seqlen) + 1) - 1, 1)          (NTK-alpha: 1, 3, 7, 15, ...)
     base'  = rope_theta * alpha ** (d / (d - 2))
     mscale = 0.1 * ln(L' / training_seqlen) + 1   (1 when L' <= training_seqlen), on cos AND sin
   and the cos / sin tables are rounded to float16 before mscale is applied (in float16) - also in a float32
   model; a float32 rope instead moves the fixture's logits by 5e-4 (32 tokens) to 8e-4 (40 tokens) on the
   oracle's recorded columns (NOTES.md: up to 2.2e-3), over the 1e-4 parity bar.
   Which L a token sees: the original always rotates a whole row with the row's current length. Here each
   token uses the length of ITS sequence in this forward pass - the last position id of its run of
   consecutive position ids, plus one. For one unpacked row that is the row length (the original's L), for
   a cached decode step it is past + 1 (the original's L, while the cached keys keep the rope of their own
   step, as in the original), and for padding-free packed rows (position ids restarting at 0) every packed
   example gets the rope it would get alone - so packing stays exact beyond training_seqlen.
2. The biases: the original has a bias on `dense` (o_proj) and on `down_proj` only; Llama's flags
   (`attention_bias`, `mlp_bias`) give all four attention / all three MLP projections one. This class builds
   Llama with both flags off and gives exactly o_proj and down_proj a bias (`o_proj_bias`, `down_proj_bias`),
   so the parameter set is the original's: full fine-tuning trains the same tensors, none that would have
   to be dropped when exporting back to the original layout.
The word embedding has no padding_idx (the original's nn.Embedding has none, so full fine-tuning updates
the pad row as the original does; Llama would pin it).

Train vs eval: the original differs only in its dropouts (attention probabilities: `attention_dropout`,
mapped; residual `hidden_dropout`: not reproduced, Llama has none - both are 0.0 in the published configs).
"""

import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
from transformers.models.llama.configuration_llama import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaForCausalLM, LlamaModel, LlamaPreTrainedModel

MODEL_TYPE = "tunelab_telechat2"


class TunelabTelechat2Config(LlamaConfig):
    """LlamaConfig plus TeleChat2's rope lengths and its two biased projections.

    training_seqlen: beyond it mscale grows (the original's `config.training_seqlen`)
    base_seqlen:     the NTK-alpha reference length (the original's `config.base_seqlen`)
    o_proj_bias / down_proj_bias: the only biased linear layers of the original
    """

    model_type = MODEL_TYPE

    training_seqlen: int = 8192
    base_seqlen: int = 8192
    o_proj_bias: bool = True
    down_proj_bias: bool = True


def ntk_alpha(length: int, base_seqlen: int) -> int:
    """The original's `RotaryEmbedding.get_ntk_alpha`, in the same float operations (math.log(x, 2), ceil),
    because alpha is a step function and a differently rounded log2 can move a step."""
    context_value = math.log(length / base_seqlen, 2) + 1
    return max(2 ** math.ceil(context_value) - 1, 1)


def rope_mscale(length: int, training_seqlen: int) -> float:
    """The original's `RotaryEmbedding.get_mscale(length / training_seqlen)`."""
    scale = length / training_seqlen
    return 1.0 if scale <= 1 else 0.1 * math.log(scale) + 1.0


def sequence_lengths(position_ids: torch.Tensor) -> torch.Tensor:
    """Per token, the length of the sequence it belongs to: last position id of its run of consecutive
    position ids + 1. A run starts at the row start and wherever a position id is not its left neighbour's
    + 1 (the packed-sequence rule of transformers' masking_utils.find_packed_sequence_indices)."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    runs = starts.flatten().cumsum(0) - 1
    last = torch.zeros(int(runs[-1]) + 1, dtype=position_ids.dtype, device=position_ids.device)
    last = last.scatter_reduce(0, runs, position_ids.flatten(), reduce="amax", include_self=False)
    return (last[runs] + 1).view_as(position_ids)


class TunelabTelechat2RotaryEmbedding(nn.Module):
    """TeleChat2's rope (module docstring, point 1): returns Llama's (cos, sin) of shape [batch, seq, head_dim]."""

    def __init__(self, config: TunelabTelechat2Config) -> None:
        super().__init__()
        self.dim = config.head_dim
        self.base = config.rope_parameters["rope_theta"]
        self.training_seqlen = config.training_seqlen
        self.base_seqlen = config.base_seqlen  # no buffers: every table is computed per forward from these

    def inverse_frequencies(self, alpha: int, device: torch.device | None = None) -> torch.Tensor:
        base = self.base * alpha ** (self.dim / (self.dim - 2))
        return 1.0 / (base ** (torch.arange(0, self.dim, 2, device=device).float() / self.dim))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = sequence_lengths(position_ids).clamp(min=self.training_seqlen)
        distinct = torch.unique(lengths)
        alphas = [ntk_alpha(n, self.base_seqlen) for n in distinct.tolist()]
        scales = [rope_mscale(n, self.training_seqlen) for n in distinct.tolist()]
        which = torch.searchsorted(distinct, lengths)
        table = torch.stack([self.inverse_frequencies(a, position_ids.device) for a in alphas])
        freqs = position_ids[..., None].float() * table[which]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().half(), emb.sin().half()
        if any(scale != 1.0 for scale in scales):
            # float16 * python float in the original: float32 product, rounded to float16
            mscale = torch.tensor(scales, dtype=torch.float32, device=x.device)[which][..., None]
            cos, sin = (cos.float() * mscale).half(), (sin.float() * mscale).half()
        return cos.to(x.dtype), sin.to(x.dtype)


class TunelabTelechat2PreTrainedModel(LlamaPreTrainedModel):
    config: TunelabTelechat2Config
    config_class = TunelabTelechat2Config
    _can_compile_fullgraph = False  # the rope reads the distinct sequence lengths on the host


class TunelabTelechat2Model(TunelabTelechat2PreTrainedModel, LlamaModel):
    """LlamaModel with TeleChat2's rope, its bias pattern and an embedding without padding_idx."""

    def __init__(self, config: TunelabTelechat2Config) -> None:
        LlamaModel.__init__(self, config)
        self.embed_tokens.padding_idx = None
        self.rotary_emb = TunelabTelechat2RotaryEmbedding(config)
        for layer in self.layers:
            if config.o_proj_bias and layer.self_attn.o_proj.bias is None:
                old = layer.self_attn.o_proj
                layer.self_attn.o_proj = nn.Linear(old.in_features, old.out_features, bias=True)
            if config.down_proj_bias and layer.mlp.down_proj.bias is None:
                old = layer.mlp.down_proj
                layer.mlp.down_proj = nn.Linear(old.in_features, old.out_features, bias=True)
        self.post_init()


class TunelabTelechat2ForCausalLM(TunelabTelechat2PreTrainedModel, LlamaForCausalLM):
    """LlamaForCausalLM over TunelabTelechat2Model (`.model` + untied `.lm_head`)."""

    def __init__(self, config: TunelabTelechat2Config) -> None:
        TunelabTelechat2PreTrainedModel.__init__(self, config)
        self.model = TunelabTelechat2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


def register() -> None:
    """Make `AutoConfig` / `AutoModel` / `AutoModelForCausalLM` know model_type `tunelab_telechat2`."""
    AutoConfig.register(MODEL_TYPE, TunelabTelechat2Config, exist_ok=True)
    AutoModel.register(TunelabTelechat2Config, TunelabTelechat2Model, exist_ok=True)
    AutoModelForCausalLM.register(TunelabTelechat2Config, TunelabTelechat2ForCausalLM, exist_ok=True)


__all__ = [
    "TunelabTelechat2Config",
    "TunelabTelechat2ForCausalLM",
    "TunelabTelechat2Model",
    "TunelabTelechat2PreTrainedModel",
    "register",
]
