"""TeleChat2 loaded natively (tunelab.model.legacy.telechat2): the tunelab Llama subclass against the original.

The numbers of the original come from scripts/oracle/reference_telechat2.py (TeleChat2's own code under
transformers 4.53.3), stored in tests/fixtures/legacy_reference/telechat2.json; the checkpoint is the tiny
fixture ../shared/fixtures/legacy/telechat2 (training_seqlen = base_seqlen = 32, so the 40-token probe runs
TeleChat2's long-context rope: NTK alpha 3, mscale 1.0223).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from tunelab.data.conversation import Message, Role
from tunelab.data.encode import encode_prompt
from tunelab.data.templates import get_template
from tunelab.model.legacy import telechat2_modeling
from tunelab.model.legacy.telechat2 import (
    BUILDER_CHAT_TEMPLATE,
    FAMILY,
    join_key_value,
    split_key_value,
)

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "legacy" / "telechat2"
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "legacy_reference" / "telechat2.json").read_text("utf-8"))
PROBES = json.loads((ROOT / "scripts" / "oracle" / "probes.json").read_text("utf-8"))
ORIGINAL_CONFIG = json.loads((FIXTURE / "config.json").read_text("utf-8"))
ATOL = 1e-4


@pytest.fixture(scope="module")
def original_weights() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "model.safetensors")


@pytest.fixture(scope="module")
def native_weights(original_weights) -> dict[str, torch.Tensor]:
    return FAMILY.to_native({k: v.float() for k, v in original_weights.items()}, ORIGINAL_CONFIG)


def build(native_weights, attn: str = "sdpa") -> torch.nn.Module:
    FAMILY.register()
    config = AutoConfig.for_model(**FAMILY.native_config(ORIGINAL_CONFIG))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attn)
    model.load_state_dict(native_weights, strict=True)
    return model


@pytest.fixture(scope="module")
def model(native_weights):
    return build(native_weights)


@pytest.fixture(scope="module")
def tokenizer():
    return FAMILY.build_tokenizer(FIXTURE)


def ids_tensor(count: int | None = None) -> torch.Tensor:
    ids = REFERENCE["input_ids"]
    return torch.tensor([ids[:count] if count else ids])


def max_diff(logits: torch.Tensor, expected: list) -> float:
    return (logits[:, REFERENCE["columns"]] - torch.tensor(expected)).abs().max().item()


# --- 1. logits parity, float32 ---------------------------------------------------------------------------------


def plain_llama_config(native):
    """The same model as transformers' plain `LlamaForCausalLM` (for exporters that only know Llama: vLLM,
    GGUF). NOT exact: Llama's default rope is float32 (the original rounds cos / sin to float16; ~2e-3 on the
    fixture's logits) and has no NTK-alpha / mscale beyond training_seqlen; all q / k / v / o and all MLP
    projections get biases (zero where the original has none, see `to_plain_llama`)."""
    plain = {k: v for k, v in native.items() if k not in ("training_seqlen", "base_seqlen", "o_proj_bias", "down_proj_bias")}
    plain.update(architectures=["LlamaForCausalLM"], model_type="llama", attention_bias=True, mlp_bias=True)
    return plain


def to_plain_llama(weights):
    """Native weights + zero biases for q / k / v and gate / up: exact in the forward, since a zero bias adds
    nothing (a full fine-tune of that plain Llama would train them, LoRA leaves them at zero)."""
    import torch

    plain = dict(weights)
    for key, tensor in weights.items():
        if re.search(r"\.(self_attn\.[qkv]_proj|mlp\.gate_proj|mlp\.up_proj)\.weight$", key):
            plain[key.removesuffix("weight") + "bias"] = torch.zeros(tensor.shape[0], dtype=tensor.dtype)
    return plain



@pytest.mark.parametrize("mode", ["train", "eval"])
def test_logits_and_loss_match_the_original_past_training_seqlen(model, mode: str) -> None:
    """40 tokens > training_seqlen 32: NTK alpha 3 and mscale act (the original's train and eval agree here)."""
    prefix = "" if mode == "train" else "eval_"
    model.train(mode == "train")
    with torch.no_grad():
        out = model(ids_tensor(), labels=ids_tensor())
    assert max_diff(out.logits[0], REFERENCE[f"{prefix}logits"]) < ATOL
    lse = torch.logsumexp(out.logits[0], -1)
    assert (lse - torch.tensor(REFERENCE[f"{prefix}logsumexp"])).abs().max().item() < ATOL
    assert out.loss.item() == pytest.approx(REFERENCE[f"{prefix}loss"], rel=1e-5)
    model.eval()


def test_logits_match_the_original_up_to_training_seqlen(model) -> None:
    model.eval()
    with torch.no_grad():
        out = model(ids_tensor(32), labels=ids_tensor(32))
    assert max_diff(out.logits[0], REFERENCE["short_eval_logits"]) < ATOL
    assert out.loss.item() == pytest.approx(REFERENCE["short_eval_loss"], rel=1e-5)


@pytest.mark.parametrize("count,key", [(40, "padded_logits"), (32, "short_padded_logits")])
def test_left_padded_batch_matches_the_original(model, count: int, key: str) -> None:
    """The original ignores the mask for positions (pad tokens take positions 0..pad-1, the row length sets
    the rope); without position_ids the native model does the same."""
    pad, ids = REFERENCE["padded_pad"], REFERENCE["input_ids"][:count]
    batch = torch.tensor([ids, [0] * pad + ids[pad:]])
    mask = torch.tensor([[1] * count, [0] * pad + [1] * (count - pad)])
    model.eval()
    with torch.no_grad():
        logits = model(batch, attention_mask=mask).logits
    assert max_diff(logits[0], REFERENCE[key][0]) < ATOL
    assert max_diff(logits[1][pad:], REFERENCE[key][1]) < ATOL


def test_eager_and_sdpa_agree(native_weights, model) -> None:
    eager = build(native_weights, "eager").eval()
    model.eval()
    pad, ids = 5, REFERENCE["input_ids"]
    batch = torch.tensor([ids, [0] * pad + ids[pad:]])
    mask = torch.tensor([[1] * 40, [0] * pad + [1] * 35])
    with torch.no_grad():
        a, b = eager(batch, attention_mask=mask).logits, model(batch, attention_mask=mask).logits
    assert (a[0] - b[0]).abs().max().item() < 1e-5 and (a[1, pad:] - b[1, pad:]).abs().max().item() < 1e-5
    assert max_diff(a[0], REFERENCE["padded_logits"][0]) < ATOL


def test_plain_llama_misses_the_parity_bar(native_weights) -> None:
    """Why tunelab has its own class (choice (b)): plain LlamaForCausalLM with the same weights (zero biases where
    the original has none) is off by ~5e-4 at 32 tokens (float32 rope vs the original's float16 tables) and by
    ~0.5 at 40 tokens (no NTK-alpha / mscale)."""
    native = FAMILY.native_config(ORIGINAL_CONFIG)
    plain = plain_llama_config(native)
    config = LlamaConfig(**{k: v for k, v in plain.items() if k not in ("architectures", "model_type")})
    llama = LlamaForCausalLM(config).eval()
    llama.load_state_dict(to_plain_llama(native_weights), strict=True)
    with torch.no_grad():
        short = max_diff(llama(ids_tensor(32)).logits[0], REFERENCE["short_eval_logits"])
        long = max_diff(llama(ids_tensor()).logits[0], REFERENCE["eval_logits"])
    assert 2e-4 < short < 2e-3
    assert long > 0.1


def test_rope_rounds_cos_sin_to_float16_and_scales_by_mscale() -> None:
    config = telechat2_modeling.TunelabTelechat2Config(
        vocab_size=8, hidden_size=32, intermediate_size=8, num_hidden_layers=1, num_attention_heads=4,
        training_seqlen=32, base_seqlen=32, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    rope = telechat2_modeling.TunelabTelechat2RotaryEmbedding(config)
    x = torch.zeros(1, dtype=torch.float32)
    cos, sin = rope(x, torch.arange(40)[None])
    assert torch.equal(cos, cos.half().float()) and torch.equal(sin, sin.half().float())
    # 40 tokens: alpha 3 (base 10000 * 3 ** (8 / 6)), mscale 0.1 * ln(40 / 32) + 1 on both tables
    assert telechat2_modeling.ntk_alpha(40, 32) == 3 and telechat2_modeling.ntk_alpha(32, 32) == 1
    assert telechat2_modeling.ntk_alpha(65, 32) == 7
    mscale = telechat2_modeling.rope_mscale(40, 32)
    assert mscale == pytest.approx(1.0223144)
    inv = 1.0 / ((10000.0 * 3 ** (8 / 6)) ** (torch.arange(0, 8, 2).float() / 8))
    emb = torch.cat([torch.arange(40).float()[:, None] * inv] * 2, -1)
    assert torch.equal(cos[0], (mscale * emb.cos().half()).float())
    assert torch.equal(sin[0], (mscale * emb.sin().half()).float())


# --- 2. back to the original layout ---------------------------------------------------------------------------


def test_to_original_inverts_to_native_bit_exactly(original_weights) -> None:
    native = FAMILY.to_native(original_weights, ORIGINAL_CONFIG)  # bfloat16 as stored
    back = FAMILY.to_original(native, ORIGINAL_CONFIG)
    assert set(back) == set(original_weights)
    for key, tensor in original_weights.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


def test_key_value_rows_are_interleaved_per_kv_head(original_weights) -> None:
    """key_value rows: [k_0 | v_0 | k_1 | v_1], head_dim 8 each (2 kv heads, hidden 32)."""
    kv = original_weights["transformer.h.0.self_attention.key_value.weight"]
    k, v = split_key_value(kv, 2)
    assert torch.equal(k, torch.cat([kv[0:8], kv[16:24]])) and torch.equal(v, torch.cat([kv[8:16], kv[24:32]]))
    assert torch.equal(join_key_value(k, v, 2), kv)


def test_native_names_and_bias_pattern(native_weights) -> None:
    """Only o_proj (the original's dense) and down_proj carry a bias; the names are Llama's."""
    biases = sorted(k for k in native_weights if k.endswith(".bias"))
    assert biases == [f"model.layers.{i}.{m}.bias" for i in (0, 1) for m in ("mlp.down_proj", "self_attn.o_proj")]
    assert "lm_head.weight" in native_weights and "model.norm.weight" in native_weights


def test_unknown_weights_and_unsupported_configs_are_refused(original_weights) -> None:
    with pytest.raises(KeyError, match="word_embeddings_layernorm"):
        FAMILY.to_native({"transformer.word_embeddings_layernorm.weight": torch.ones(2)}, ORIGINAL_CONFIG)
    with pytest.raises(ValueError, match="embed_layernorm"):
        FAMILY.native_config({**ORIGINAL_CONFIG, "embed_layernorm": True})


def test_matches_telechat2_only() -> None:
    assert FAMILY.matches(ORIGINAL_CONFIG)
    assert FAMILY.matches({"model_type": "telechat", "auto_map": {"AutoModelForCausalLM": "modeling_telechat2.Telechat2ForCausalLM"}})
    assert not FAMILY.matches({"model_type": "telechat", "architectures": ["TelechatForCausalLM"]})
    assert not FAMILY.matches({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})


def test_native_config_is_complete_and_round_trips() -> None:
    native = FAMILY.native_config(ORIGINAL_CONFIG)
    FAMILY.register()
    config = AutoConfig.for_model(**native)
    assert type(config) is telechat2_modeling.TunelabTelechat2Config
    again = config.to_dict()
    for key, value in native.items():
        assert again[key] == value, key
    assert native["architectures"] == ["TunelabTelechat2ForCausalLM"] and native["model_type"] == "tunelab_telechat2"
    assert (native["bos_token_id"], native["eos_token_id"], native["pad_token_id"]) == (1, 2, 3)
    assert native["dtype"] == "float32" and native["tie_word_embeddings"] is False
    assert native["max_position_embeddings"] == 8192 and (native["training_seqlen"], native["base_seqlen"]) == (32, 32)
    assert native["num_key_value_heads"] == 2 and native["intermediate_size"] == 64 and native["head_dim"] == 8


def test_tied_config_drops_and_restores_lm_head(original_weights) -> None:
    """transformers 4.x ties lm_head to the embedding unless the config says false (PretrainedConfig default)."""
    tied = {k: v for k, v in ORIGINAL_CONFIG.items() if k != "tie_word_embeddings"}
    assert FAMILY.native_config(tied)["tie_word_embeddings"] is True
    native = FAMILY.to_native(original_weights, tied)
    assert "lm_head.weight" not in native
    back = FAMILY.to_original(native, tied)
    assert torch.equal(back["lm_head.weight"], original_weights["transformer.word_embeddings.weight"])


def test_lora_targets_cover_every_original_linear(model) -> None:
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(FAMILY.lora_targets) == {"query", "key_value", "dense", "gate_proj", "up_proj", "down_proj", "lm_head"}
    assert FAMILY.lora_targets["key_value"] == ("k_proj", "v_proj") and FAMILY.lora_targets["dense"] == ("o_proj",)
    assert {n for names in FAMILY.lora_targets.values() for n in names} == linear


# --- 3. tokenizer ---------------------------------------------------------------------------------------------


def test_token_ids_equal_the_original(tokenizer) -> None:
    for text, ids in REFERENCE["token_ids"].items():
        assert tokenizer.encode(text) == ids, text
        assert tokenizer.encode(text, add_special_tokens=False) == ids, text


def test_longer_texts_equal_the_original_unless_they_spell_special_tokens(tokenizer) -> None:
    """tokenization_telechat.py spells `"<_end>"` etc. in its code: the original keeps those as characters
    (single_word eos / pad; see test_control_tokens_in_text_are_parsed_unlike_the_original)."""
    compared = []
    for name, ids in REFERENCE["extra_token_ids"].items():
        text = (FIXTURE / name).read_text(encoding="utf-8")
        if any(token in text for token in REFERENCE["special_tokens"]):
            continue
        assert tokenizer.encode(text) == ids, name
        compared.append(name)
    assert compared == ["PROVENANCE.md", "generation_utils.py"]


def test_decode_round_trips(tokenizer) -> None:
    for text, ids in REFERENCE["token_ids"].items():
        assert tokenizer.decode(ids) == REFERENCE["decode"][text] == text


def test_special_tokens_map_to_the_original_ids(tokenizer) -> None:
    assert len(REFERENCE["special_tokens"]) == 18
    for text, token_id in REFERENCE["special_tokens"].items():
        assert tokenizer.convert_tokens_to_ids(text) == token_id, text
        assert tokenizer.encode(text) == [token_id], text
    assert {4: "<_user>", 5: "<_bot>", 6: "<_system>"} == {i: tokenizer.convert_ids_to_tokens(i) for i in (4, 5, 6)}
    for text, token_id in REFERENCE["user_defined_tokens"].items():
        assert tokenizer.convert_tokens_to_ids(text) == token_id, text


def test_special_token_text_agrees_where_the_original_parses_it(tokenizer) -> None:
    """bos / eos strings, the dummy prefix after them, user-defined symbols: as the original."""
    for text in ("<_end>", "a <_end> b", "<_start>hi", "<reserve7>7__x___y"):
        assert tokenizer.encode(text) == REFERENCE["special_in_text"][text], text


def test_control_tokens_in_text_are_parsed_unlike_the_original(tokenizer) -> None:
    """Deliberate difference: the original splits `<_user>` in text into characters (sentencepiece never emits
    control pieces; its family inserts 4 / 5 as ids) and, with single_word, `<_end>` glued to a word too.
    tunelab's templates render these as text, so the fast tokenizer must read them as the ids."""
    assert REFERENCE["special_in_text"]["<_user>"] == [710, 28, 2398, 126192]
    assert tokenizer.encode("<_user>") == [4]
    assert tokenizer.encode("a<_end>b") == [393, 2, 417]  # '▁a', <_end>, '▁b' (the original: 6 character pieces)


def test_len_and_bos_eos_pad_as_the_original(tokenizer) -> None:
    special = REFERENCE["tokenizer_special"]
    assert len(tokenizer) == REFERENCE["len_tokenizer"] == 131072
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == (special["bos_token"], special["bos_token_id"]) == ("<_start>", 1)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == (special["eos_token"], special["eos_token_id"]) == ("<_end>", 2)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == (special["pad_token"], special["pad_token_id"]) == ("<_pad>", 3)


def test_unk_is_sentencepiece_unk_not_the_configs_eos_broken_in_original(tokenizer) -> None:
    """The original's tokenizer_config.json names `<_end>` (2, the eos) as unk_token, but its encoder maps an
    unknown piece to sentencepiece's unk `<_unk>` (0); tunelab's unk is that piece, so unk != eos."""
    assert REFERENCE["tokenizer_special"]["unk_token_id"] == 2 and REFERENCE["unknown_piece_id"] == 0
    assert (tokenizer.unk_token, tokenizer.unk_token_id) == ("<_unk>", 0)
    assert tokenizer.convert_tokens_to_ids("<no such piece>") == REFERENCE["unknown_piece_id"]


def test_skip_special_tokens_drops_the_role_tokens(tokenizer) -> None:
    assert tokenizer.decode([1, 4, 96343, 5, 2], skip_special_tokens=True) == "你好"


def test_saved_tokenizer_reloads_with_the_same_ids(tokenizer, tmp_path) -> None:
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for text, ids in REFERENCE["token_ids"].items():
        assert again.encode(text) == ids, text
    assert again.encode("<_user>") == [4] and again.chat_template == tokenizer.chat_template


# --- 4. chat ids ----------------------------------------------------------------------------------------------


def _conversation() -> tuple[str, list[Message]]:
    turns = PROBES["conversation"]
    assert turns[0]["role"] == "system"
    return turns[0]["content"], [Message(Role.USER if t["role"] == "user" else Role.ASSISTANT, t["content"]) for t in turns[1:]]


def test_builder_chat_template_gives_the_family_chat_ids(tokenizer) -> None:
    """The tokenizer's chat template (the fixture has none) is build_inputs_for_chat: bos, ids per role, system dropped."""
    assert tokenizer.chat_template == BUILDER_CHAT_TEMPLATE
    messages = [{"role": t["role"], "content": t["content"]} for t in PROBES["conversation"]]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert list(ids) == REFERENCE["chat_ids"]
    assert REFERENCE["chat_ids"][:2] == [1, 4] and REFERENCE["chat_ids"][-1] == 5


@pytest.mark.xfail(strict=True, reason="template `telechat2` follows the TeleChat2-7B hub jinja: '<_system>' + system + "
                   "'\\n' first (its default Chinese system prompt when none), '\\n' after every '<_end>', no bos; "
                   "build_inputs_for_chat starts with bos <_start> (1), drops the system message, has no separators")
def test_tunelab_telechat2_template_gives_the_family_chat_ids(tokenizer) -> None:
    system, messages = _conversation()
    assert encode_prompt(tokenizer, get_template("telechat2"), messages, system=system) == REFERENCE["chat_ids"]


@pytest.mark.xfail(strict=True, reason="template `telechat` (the seed's, TeleChat 1) has no bos: the family's ids "
                   "start with <_start> (1); with a system message it writes the system text before the first "
                   "<_user>, the builder drops it")
def test_tunelab_telechat_template_gives_the_family_chat_ids(tokenizer) -> None:
    system, messages = _conversation()
    assert encode_prompt(tokenizer, get_template("telechat"), messages, system=None) == REFERENCE["chat_ids"]


def test_tunelab_telechat_template_differs_only_by_the_leading_bos(tokenizer) -> None:
    """Measured difference of the xfail above (without a system message): exactly the builder's bos."""
    _, messages = _conversation()
    assert [1, *encode_prompt(tokenizer, get_template("telechat"), messages, system=None)] == REFERENCE["chat_ids"]


# --- 5. training and generation -------------------------------------------------------------------------------


def test_packed_rows_equal_each_example_alone(model) -> None:
    """Padding-free packing (restarting position_ids, no mask): each example keeps its own rope length, also
    the 40-token one past training_seqlen packed next to shorter ones."""
    ids = REFERENCE["input_ids"]
    examples = [ids, ids[3:23], ids[7:19]]
    packed = torch.tensor([sum(examples, [])])
    positions = torch.tensor([sum((list(range(len(e))) for e in examples), [])])
    model.eval()
    with torch.no_grad():
        logits = model(packed, position_ids=positions, use_cache=False).logits[0]
        start = 0
        for example in examples:
            alone = model(torch.tensor([example]), use_cache=False).logits[0]
            part = logits[start : start + len(example)]
            assert (part - alone).abs().max().item() < 1e-5
            labels = torch.tensor(example)
            loss_alone = torch.nn.functional.cross_entropy(alone[:-1], labels[1:])
            loss_packed = torch.nn.functional.cross_entropy(part[:-1], labels[1:])
            assert abs(loss_alone.item() - loss_packed.item()) < 1e-5
            start += len(example)


def test_sequence_lengths_follow_restarting_positions() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3], [5, 6, 7, 8, 9, 0, 1, 2, 3]])
    expected = torch.tensor([[3, 3, 3, 2, 2, 4, 4, 4, 4], [10, 10, 10, 10, 10, 4, 4, 4, 4]])
    assert torch.equal(telechat2_modeling.sequence_lengths(positions), expected)


def test_hidden_states_with_logits_to_keep(model) -> None:
    model.eval()
    with torch.no_grad():
        out = model(ids_tensor(), output_hidden_states=True, logits_to_keep=1)
    assert out.logits.shape[1] == 1 and len(out.hidden_states) == 3
    last = out.hidden_states[-1][:, -1]
    assert torch.allclose(last @ model.lm_head.weight.T, out.logits[:, -1], atol=1e-5)
    assert max_diff(out.logits[0], REFERENCE["eval_logits"][-1:]) < ATOL


def test_gradient_checkpointing_gives_the_same_loss_and_grads(native_weights) -> None:
    results = []
    for checkpointing in (False, True):
        model = build(native_weights)
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        out = model(ids_tensor(), labels=ids_tensor(), use_cache=False)
        out.loss.backward()
        results.append((out.loss.item(), model.model.layers[0].self_attn.q_proj.weight.grad.clone()))
    assert results[0][0] == pytest.approx(REFERENCE["loss"], rel=1e-5)
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_loss_accepts_num_items_in_batch(model) -> None:
    model.train()
    with torch.no_grad():
        out = model(ids_tensor(), labels=ids_tensor(), num_items_in_batch=torch.tensor(78))
    assert out.loss.item() == pytest.approx(REFERENCE["loss"] * 39 / 78, rel=1e-5)
    model.eval()


def test_embedding_has_no_padding_idx_so_the_pad_row_trains(native_weights) -> None:
    model = build(native_weights).train()
    assert model.model.embed_tokens.padding_idx is None
    ids = torch.tensor([[3, *REFERENCE["input_ids"][:8]]])  # pad id 3 as an input token
    model(ids, labels=ids, use_cache=False).loss.backward()
    assert model.model.embed_tokens.weight.grad[3].abs().sum().item() > 0


@pytest.mark.parametrize("key,count", [("greedy_ids", 12), ("greedy_ids_cross", 28), ("greedy_ids_long", 40)])
def test_greedy_generation_with_and_without_cache_matches_the_original(model, key: str, count: int) -> None:
    """`_cross`: the cached decode steps cross training_seqlen; `_long`: all of them past it."""
    model.eval()
    kwargs = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False)
    cached = model.generate(ids_tensor(count), **kwargs)[0, count:].tolist()
    uncached = model.generate(ids_tensor(count), use_cache=False, **kwargs)[0, count:].tolist()
    assert cached == REFERENCE[key]
    assert uncached == REFERENCE[f"{key}_nocache"]


def test_native_folder_loads_with_from_pretrained(model, tmp_path) -> None:
    FAMILY.register()
    native = FAMILY.native_config(ORIGINAL_CONFIG)
    (tmp_path / "config.json").write_text(json.dumps(native), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is telechat2_modeling.TunelabTelechat2ForCausalLM
    with torch.no_grad():
        assert max_diff(loaded(ids_tensor()).logits[0], REFERENCE["eval_logits"]) < ATOL
