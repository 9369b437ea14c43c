"""Packing isolation, architecture by architecture: a padding-free or packed row computes, for each of its
examples, exactly the loss and gradients of that example alone (sdpa and eager, float32, atol 1e-5), or
the architecture falls back to padded rows and says why. `model/packing_isolation.PROVEN` may only name
architectures proved here."""

from __future__ import annotations

import logging

import pytest
import torch

from tunelab.data.batching import pack_examples, pack_indices
from tunelab.model.packing_isolation import CARRIES_STATE, PROVEN, packing_isolation, probe_isolation
from tunelab.train.stages.lm import PackedCollator, PaddingCollator, PaddingFreeCollator, make_collator

COMMON = {"vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
          "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 128,
          "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
#: a sliding window shorter than the examples, so windowed layers are tested inside packed rows
WINDOW = {"sliding_window": 8}
MOE = {"moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2}
LINEAR = {"linear_num_value_heads": 4, "linear_num_key_heads": 2, "linear_key_head_dim": 8,
          "linear_value_head_dim": 8}
#: model_type -> what its tiny config needs beyond COMMON
ARCHITECTURES: dict[str, dict] = {
    "llama": {}, "mistral": WINDOW, "ministral": WINDOW, "mixtral": {**WINDOW, "num_local_experts": 4},
    "qwen2": {}, "qwen2_moe": MOE, "qwen3": {}, "qwen3_moe": MOE, "gemma": {}, "gemma2": WINDOW,
    "gemma3_text": WINDOW, "phi": {}, "phi3": {}, "glm": {}, "glm4": {}, "olmo2": {}, "granite": {}, "cohere": {},
    "starcoder2": WINDOW, "smollm3": {}, "exaone4": WINDOW,
    "deepseek_v3": {"num_key_value_heads": 4, "moe_intermediate_size": 32, "n_routed_experts": 4,
                    "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "first_k_dense_replace": 1,
                    "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
                    "v_head_dim": 8},
    "gpt_oss": {**WINDOW, "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen3_5_text": LINEAR, "qwen3_5_moe_text": {**LINEAR, **MOE}, "qwen3_next": {**LINEAR, **MOE},
    "falcon_h1": {"mamba_d_ssm": 64, "mamba_n_heads": 8, "mamba_d_head": 8, "mamba_d_state": 16,
                  "mamba_chunk_size": 16},  # the default mamba sizes (d_ssm 1024, d_state 256) took 20 s per case
    "lfm2": {"layer_types": ["conv", "full_attention", "conv", "full_attention"]},
    # tunelab's own classes of remote-code families (model/legacy/); TeleChat2's rope changes past 8 tokens here
    "tunelab_baichuan2_alibi": {"num_key_value_heads": 4},
    "tunelab_telechat2": {"training_seqlen": 8, "base_seqlen": 8},
    "tunelab_yuan2": {"num_key_value_heads": 4},
}
NO_SDPA = {"gemma2", "gpt_oss"}  # transformers runs these with eager attention only
CASES = [(arch, attention) for arch in ARCHITECTURES for attention in ("sdpa", "eager")
         if not (attention == "sdpa" and arch in NO_SDPA)]


def tiny_model(arch: str, attention: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunelab.model.legacy import FAMILIES

    for family in FAMILIES:  # tunelab's own classes join the Auto classes as a converted checkpoint loads
        if family.register is not None:
            family.register()

    config = AutoConfig.for_model(arch, **{**COMMON, **ARCHITECTURES[arch]})
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attention).eval()


def examples(shapes=((20, 5), (11, 3), (7, 2))) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for length, prompt in shapes:
        ids = torch.randint(3, 250, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def token_losses(model, batch) -> torch.Tensor:
    """Per-position next-token losses [rows, T-1] (0 where the label is ignored)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "num_tokens")}
    logits = model(**inputs).logits.float()[:, :-1]
    labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")


def per_example(losses: torch.Tensor, groups: list[list[int]], lengths: list[int]) -> dict[int, torch.Tensor]:
    """Each example's summed loss, read from the packed rows it was placed in."""
    out = {}
    for row, members in enumerate(groups):
        start = 0
        for index in members:
            out[index] = losses[row, start : start + lengths[index] - 1].sum()
            start += lengths[index]
    return out


def alone(model, data) -> tuple[list[float], dict[str, torch.Tensor]]:
    model.zero_grad()
    losses = [token_losses(model, PaddingCollator(pad_token_id=0)([e])).sum() for e in data]
    sum(losses).backward()
    return [x.item() for x in losses], {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_isolated(model, data, batch, groups) -> None:
    expected, expected_grads = alone(model, data)
    model.zero_grad()
    got = per_example(token_losses(model, batch), groups, [len(e["input_ids"]) for e in data])
    sum(got.values()).backward()
    for index, value in enumerate(expected):
        assert got[index].item() == pytest.approx(value, abs=1e-5, rel=1e-5), f"example {index}"
    for name, grad in expected_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(("arch", "attention"), CASES)
def test_packed_examples_equal_the_examples_alone_or_fall_back(arch, attention, caplog):
    model = tiny_model(arch, attention)
    data = examples()
    lengths = [len(e["input_ids"]) for e in data]
    with caplog.at_level(logging.INFO, logger="tunelab.model"):
        isolation = packing_isolation(model)
    if arch in PROVEN:
        assert isolation.isolates, isolation.reason
        free_groups = pack_indices(lengths, max(lengths))  # 20 | 11 + 7: the second row holds two examples
        assert free_groups == [[0], [1, 2]]
        assert_isolated(model, data, PaddingFreeCollator(pad_token_id=0)(data), free_groups)
        rows = pack_examples(data, cutoff_len=64)  # one row of all three
        assert_isolated(model, data, PackedCollator(pad_token_id=0)(rows), [[0, 1, 2]])
        return
    # not proved: the table or the probe says so, one warning names the architecture, and it is right to
    assert not isolation.isolates
    assert any(arch in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    leaked, difference = probe_isolation(model)
    assert not leaked and difference > 1e-5
    packed = PackedCollator(pad_token_id=0, isolates=False)(pack_examples(data, cutoff_len=64))
    assert packed["input_ids"].shape[0] == 3 and "position_ids" not in packed  # one padded row per example
    assert_isolated(model, data, packed, [[0], [1], [2]])


def test_the_table_claims_only_what_is_proved_here():
    assert PROVEN <= set(ARCHITECTURES)
    assert set(CARRIES_STATE) & set(ARCHITECTURES) <= {a for a in ARCHITECTURES if a not in PROVEN}


# -- the start-up probe on an architecture tunelab has no entry for ------------------------------------------




def _custom_model(leaks: bool):
    """A tiny decoder-only LM of a made-up architecture: attention-free, a running mean over the row
    (which leaks across packed examples) or a per-token MLP (which does not)."""
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutput

    class MixerConfig(PretrainedConfig):
        model_type = "tunelab_test_mixer"

    class MixerLM(PreTrainedModel):
        config_class = MixerConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = torch.nn.Embedding(config.vocab_size, 16)
            self.mix = torch.nn.Linear(16, 16)
            self.head = torch.nn.Linear(16, config.vocab_size)

        def get_input_embeddings(self):
            return self.embed

        def forward(self, input_ids=None, position_ids=None, use_cache=None, **kwargs):
            hidden = self.embed(input_ids)
            if leaks:  # a running mean along the row: the state crosses example boundaries
                steps = torch.arange(1, hidden.shape[1] + 1, device=hidden.device)[None, :, None]
                hidden = hidden.cumsum(1) / steps
            return CausalLMOutput(logits=self.head(torch.tanh(self.mix(hidden))))

    torch.manual_seed(0)
    return MixerLM(MixerConfig(vocab_size=64))


def test_the_probe_turns_packing_off_for_an_unknown_architecture_that_leaks(caplog):
    from types import SimpleNamespace

    model = _custom_model(leaks=True)
    config = SimpleNamespace(data=SimpleNamespace(padding_free=True))
    prepared = SimpleNamespace(packed=False)
    with caplog.at_level(logging.INFO, logger="tunelab.model"):
        collator = make_collator(prepared, SimpleNamespace(pad_token_id=0), model, config)
    assert isinstance(collator, PaddingCollator)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "tunelab_test_mixer: the start-up probe found a packed example differing" in warning[0]
    assert "padding-free / packed rows are not used" in warning[0]


def test_the_probe_keeps_packing_for_an_unknown_architecture_that_isolates(caplog):
    from types import SimpleNamespace

    model = _custom_model(leaks=False)
    config = SimpleNamespace(data=SimpleNamespace(padding_free=True))
    with caplog.at_level(logging.INFO, logger="tunelab.model"):
        collator = make_collator(SimpleNamespace(packed=False), SimpleNamespace(pad_token_id=0), model, config)
    assert isinstance(collator, PaddingFreeCollator)
    assert any("tunelab_test_mixer: not in tunelab's table; the start-up probe found packed and lone examples equal"
               in r.getMessage() for r in caplog.records)
