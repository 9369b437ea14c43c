"""ChatGLM3 loaded natively as transformers' GLM (src/tunelab/model/legacy/chatglm3.py), against the original code.

The numbers come from tests/fixtures/legacy_reference/chatglm3.json, written by scripts/oracle/reference_chatglm3.py
running the ORIGINAL modeling_chatglm.py / tokenization_chatglm.py under transformers 4.41.2 on
../shared/fixtures/legacy/chatglm3 (tiny random weights, the real tokenizer.model). No oracle runs here.

Train vs eval: the original differs only by dropout (0.0 in the fixture, as in every ChatGLM3 checkpoint), so the
native model must give the original's logits in both modes; the oracle's own train and eval logits are equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from tunelab.data.conversation import Message, Role
from tunelab.data.encode import encode_prompt, stop_token_ids
from tunelab.data.templates import get_template
from tunelab.errors import UserError
from tunelab.model.legacy.chatglm3 import CHAT_TEMPLATE, FAMILY, GLM_SPECIAL_TOKENS, rotary_inv_freq

FIXTURE = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "legacy" / "chatglm3"
REFERENCE = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures" / "legacy_reference" / "chatglm3.json").read_text("utf-8")
)
PROBES = json.loads((Path(__file__).resolve().parents[3] / "scripts" / "oracle" / "probes.json").read_text("utf-8"))
ATOL = 1e-4
PAD = REFERENCE["padded_pad"]
ROLES = {"system": None, "user": Role.USER, "assistant": Role.ASSISTANT}
#: texts of the oracle's extra set that hold control-token text on purpose (see test_control_token_text_...)
#: the oracle's extra texts read from the fixture folder (the others are keyed by their own text)
EXTRA_FILES = ("MODEL_LICENSE", "quantization.py", "configuration_chatglm.py")
CONTROL_TEXTS = ("People's Aesop sopping eop [MASK]ed", "<s> </s> <unk> literal control pieces")


@pytest.fixture(scope="module")
def original_config() -> dict:
    return json.loads((FIXTURE / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def original_weights() -> dict[str, torch.Tensor]:
    """As stored: bfloat16 matrices (bf16-exact values, so float32 copies are exact) and a float32 inv_freq."""
    return load_file(FIXTURE / "model.safetensors")


@pytest.fixture(scope="module")
def native_weights(original_weights, original_config) -> dict[str, torch.Tensor]:
    return FAMILY.to_native({k: v.float() for k, v in original_weights.items()}, original_config)


def build_native(native_weights, original_config, attention: str = "sdpa"):
    config = AutoConfig.for_model(**FAMILY.native_config(original_config))
    config._attn_implementation = attention
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(native_weights, strict=True)
    return model


@pytest.fixture(scope="module")
def model(native_weights, original_config):
    return build_native(native_weights, original_config)


@pytest.fixture(scope="module")
def eager_model(native_weights, original_config):
    return build_native(native_weights, original_config, "eager")


@pytest.fixture(scope="module")
def tokenizer():
    return FAMILY.build_tokenizer(FIXTURE)


def ids_tensor(ids=None) -> torch.Tensor:
    return torch.tensor([REFERENCE["input_ids"] if ids is None else ids])


def cols(logits: torch.Tensor) -> torch.Tensor:
    return logits[..., REFERENCE["columns"]]


def max_diff(a: torch.Tensor, b) -> float:
    return (a - torch.as_tensor(b, dtype=a.dtype)).abs().max().item()


def padded_batch(ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    tail = ids[PAD:]
    return torch.tensor([ids, [0] * PAD + tail]), torch.tensor([[1] * len(ids), [0] * PAD + [1] * len(tail)])


# --- 1. logits parity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_logits_and_loss_equal_the_original(model, mode):
    """Measured: max |Δlogits| 0.0 and loss Δ 0.0 in both modes (the same float32 ops in the same order)."""
    model.train(mode == "train")
    with torch.no_grad():
        out = model(input_ids=ids_tensor(), labels=ids_tensor(), use_cache=False)
    key = "" if mode == "train" else "eval_"
    logits = out.logits[0]
    assert max_diff(cols(logits), REFERENCE[f"{key}logits"]) < ATOL
    assert max_diff(torch.logsumexp(logits, -1), REFERENCE[f"{key}logsumexp"]) < ATOL
    assert out.loss.item() == pytest.approx(REFERENCE[f"{key}loss"], rel=1e-5)


def test_original_train_and_eval_agree():
    """The oracle itself: with dropout 0 the original's two modes are the same computation."""
    assert REFERENCE["eval_loss"] == REFERENCE["loss"]
    assert max_diff(torch.tensor(REFERENCE["eval_logits"]), REFERENCE["logits"]) == 0.0


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_padded_batch_with_attention_mask(model, eager_model, attention):
    """Left padding + mask; positions count from the row start in both (the original's `get_position_ids`)."""
    net = model if attention == "sdpa" else eager_model
    batch, mask = padded_batch(REFERENCE["input_ids"])
    net.eval()
    with torch.no_grad():
        logits = net(input_ids=batch, attention_mask=mask, use_cache=False).logits
    assert max_diff(cols(logits[0]), REFERENCE["padded_logits"][0]) < ATOL
    assert max_diff(cols(logits[1, PAD:]), REFERENCE["padded_logits"][1]) < ATOL


def test_sdpa_and_eager_agree(model, eager_model):
    model.eval(), eager_model.eval()
    with torch.no_grad():
        a = model(input_ids=ids_tensor(), use_cache=False).logits
        b = eager_model(input_ids=ids_tensor(), use_cache=False).logits
    assert max_diff(a, b) < 1e-5
    assert max_diff(cols(b[0]), REFERENCE["eval_logits"]) < ATOL


# --- 2. the conversion and the native config ---------------------------------------------------------------------


def test_to_original_inverts_to_native_bit_exactly(original_weights, original_config):
    native = FAMILY.to_native(original_weights, original_config)
    back = FAMILY.to_original(native, original_config)
    assert set(back) == set(original_weights)
    for key, tensor in original_weights.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


def test_query_key_value_splits_into_contiguous_q_k_v_blocks(original_weights, original_config):
    """[q: 4 heads * 8 | k: 2 groups * 8 | v: 2 groups * 8], weight and bias (not interleaved per head)."""
    native = FAMILY.to_native(original_weights, original_config)
    fused_w = original_weights["transformer.encoder.layers.1.self_attention.query_key_value.weight"]
    fused_b = original_weights["transformer.encoder.layers.1.self_attention.query_key_value.bias"]
    for name, (start, stop) in {"q_proj": (0, 32), "k_proj": (32, 48), "v_proj": (48, 64)}.items():
        assert torch.equal(native[f"model.layers.1.self_attn.{name}.weight"], fused_w[start:stop])
        assert torch.equal(native[f"model.layers.1.self_attn.{name}.bias"], fused_b[start:stop])
    assert torch.equal(native["model.layers.0.mlp.gate_up_proj.weight"],
                       original_weights["transformer.encoder.layers.0.mlp.dense_h_to_4h.weight"])
    assert "transformer.rotary_pos_emb.inv_freq" in original_weights
    assert not any("inv_freq" in key for key in native)


def test_per_head_qkv_layout_without_multi_query_round_trips(original_config):
    """`multi_query_attention: false` (ChatGLM2-style full attention) views the output as [heads, 3 * d]: each
    head's rows are [q_h | k_h | v_h]."""
    config = {**original_config, "multi_query_attention": False}
    heads, d, hidden = 4, 8, 32
    fused = torch.arange(3 * heads * d * hidden, dtype=torch.float32).view(3 * heads * d, hidden)
    bias = torch.arange(3 * heads * d, dtype=torch.float32)
    weights = {"transformer.encoder.layers.0.self_attention.query_key_value.weight": fused,
               "transformer.encoder.layers.0.self_attention.query_key_value.bias": bias}
    native = FAMILY.to_native(weights, config)
    per_head = bias.view(heads, 3, d)
    assert torch.equal(native["model.layers.0.self_attn.k_proj.bias"], per_head[:, 1].reshape(-1))
    assert torch.equal(native["model.layers.0.self_attn.v_proj.weight"], fused.view(heads, 3, d, hidden)[:, 2].reshape(-1, hidden))
    assert FAMILY.native_config(config)["num_key_value_heads"] == heads
    back = FAMILY.to_original(native, config)
    assert torch.equal(back["transformer.encoder.layers.0.self_attention.query_key_value.weight"], fused)
    assert torch.equal(back["transformer.encoder.layers.0.self_attention.query_key_value.bias"], bias)


def test_inv_freq_is_restored_as_the_original_builds_it(original_weights, original_config):
    assert torch.equal(rotary_inv_freq(original_config), original_weights["transformer.rotary_pos_emb.inv_freq"])
    half = rotary_inv_freq({**original_config, "torch_dtype": "float16"})
    assert half.dtype == torch.float16


def test_to_native_refuses_unknown_tensors(original_weights, original_config):
    with pytest.raises(ValueError, match="unexpected"):
        FAMILY.to_native({**original_weights, "transformer.prefix_encoder.embedding.weight": torch.ones(1)},
                         original_config)


@pytest.mark.parametrize("override", [{"add_bias_linear": True}, {"rmsnorm": False}, {"post_layer_norm": False},
                                      {"apply_residual_connection_post_layernorm": True},
                                      {"fp32_residual_connection": True}, {"pre_seq_len": 128},
                                      {"quantization_bit": 4}])
def test_layouts_without_an_exact_glm_equivalent_are_refused(original_config, override):
    with pytest.raises(UserError, match=next(iter(override))):
        FAMILY.native_config({**original_config, **override})


def test_native_config_is_complete_and_round_trips(original_config):
    native = FAMILY.native_config(original_config)
    config = AutoConfig.for_model(**native)
    assert type(config).__name__ == "GlmConfig" and config.architectures == ["GlmForCausalLM"]
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 8)
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (32, 64, 2)
    assert config.vocab_size == 65024 and config.max_position_embeddings == 8192
    assert config.rope_parameters["rope_theta"] == 10000.0
    assert config.rope_parameters["partial_rotary_factor"] == 0.5
    assert config.rms_norm_eps == 1e-5 and config.attention_bias is True
    assert config.tie_word_embeddings is False and config.dtype == torch.float32
    assert config.pad_token_id == 0 and config.bos_token_id is None
    assert config.eos_token_id == REFERENCE["chat_stop_ids"] == [2, 64795, 64797]
    again = AutoConfig.for_model(**json.loads(config.to_json_string()))
    assert again.to_dict() == config.to_dict()


def test_rope_ratio_scales_the_base(original_config):
    """ChatGLM3-6B-32k / 128k: `RotaryEmbedding.forward_impl(base=10000 * rope_ratio)` in their code revision."""
    assert FAMILY.native_config({**original_config, "rope_ratio": 50})["rope_parameters"]["rope_theta"] == 500000.0


def test_matches_chatglm3_only(original_config):
    assert FAMILY.matches(original_config)
    assert not FAMILY.matches({"model_type": "chatglm", "vocab_size": 130528, "position_encoding_2d": True})
    assert not FAMILY.matches({**original_config, "padded_vocab_size": 151552})  # GLM-4, tiktoken vocabulary
    assert not FAMILY.matches({**original_config, "model_type": "glm"})


def test_native_folder_loads_with_from_pretrained(tmp_path, native_weights, original_config, model):
    (tmp_path / "config.json").write_text(json.dumps(FAMILY.native_config(original_config)), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in native_weights.items()}, str(tmp_path / "model.safetensors"))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert type(loaded).__name__ == "GlmForCausalLM"
    loaded.eval()
    with torch.no_grad():
        logits = loaded(input_ids=ids_tensor()).logits
    assert max_diff(cols(logits[0]), REFERENCE["eval_logits"]) < ATOL
    assert loaded.get_output_embeddings() is loaded.lm_head
    assert loaded.lm_head.weight.data_ptr() != loaded.get_input_embeddings().weight.data_ptr()


def test_lora_targets_cover_every_original_linear(original_weights, model):
    """Each linear of the original (2-D weights but the embedding) maps onto linears of the native model."""
    own = {key.rsplit(".", 2)[-2] for key, t in original_weights.items() if t.dim() == 2 and "embedding" not in key}
    assert own == set(FAMILY.lora_targets)
    native = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {name for targets in FAMILY.lora_targets.values() for name in targets} == native


# --- 3. the tokenizer ----------------------------------------------------------------------------------------------


def test_encode_equals_the_original_on_every_probe(tokenizer):
    for text in PROBES["texts"]:
        assert tokenizer.encode(text) == REFERENCE["token_ids"][text], text
        assert tokenizer.encode(text, add_special_tokens=False) == REFERENCE["plain_token_ids"][text], text
        assert tokenizer.convert_ids_to_tokens(REFERENCE["plain_token_ids"][text]) == REFERENCE["tokens"][text]


def test_merges_are_ranked_by_the_merged_pieces_score(tokenizer):
    """sentencepiece BPE merges the pair whose merged piece has the highest score; tokenizers BPE merges by rank."""
    from tunelab.model.legacy.chatglm3 import _read_sentencepiece

    scores = {p.piece: p.score for p in _read_sentencepiece(FIXTURE / "tokenizer.model").pieces}
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    ranked = [scores["".join(m) if isinstance(m, list) else m.replace(" ", "")] for m in merges]
    assert len(ranked) > 90000 and ranked == sorted(ranked, reverse=True)


def test_encode_prepends_gmask_sop(tokenizer):
    assert tokenizer.encode("") == [64790, 64792]
    plain = [tokenizer.encode(t, add_special_tokens=False) for t in ("a", "b")]
    assert tokenizer.encode("a", "b") == [64790, 64792, *plain[0], *plain[1], 2]  # build_inputs_with_special_tokens


def test_encode_equals_the_original_on_longer_texts(tokenizer):
    """The license (Chinese and English; "People’s" holds "eop"), two code files, whitespace runs, byte fallback."""
    texts = {name: (FIXTURE / name).read_text("utf-8") if name in EXTRA_FILES else name
             for name in REFERENCE["extra_token_ids"]}
    checked = 0
    for name, ids in REFERENCE["extra_token_ids"].items():
        if name in CONTROL_TEXTS:
            continue
        assert tokenizer.encode(texts[name], add_special_tokens=False) == ids, name
        checked += len(ids)
    assert checked > 10000


def test_control_token_text_becomes_the_token_unlike_the_original(tokenizer):
    """A deliberate difference: the original's `encode` keeps "</s>", "eop", "[MASK]" written in text as text
    (sentencepiece pieces); here they are their ids, as in every fast tokenizer (tunelab appends the eos as text).
    "sop" / "eop" only as whole words: "Aesop", "sopping", "People" stay text, with the original's ids."""
    text = CONTROL_TEXTS[0]
    ids = tokenizer.encode(text, add_special_tokens=False)
    original = REFERENCE["extra_token_ids"][text]
    assert ids[:8] == original[:8]  # "People's Aesop sopping"
    assert ids[8:] == [30910, 64793, 265, 64789, 1081]  # ▁ eop ▁▁ [MASK] ▁ed
    assert tokenizer.encode(CONTROL_TEXTS[1], add_special_tokens=False)[:5] == [1, 265, 2, 265, 0]


def test_role_tokens_in_text_are_their_ids_as_with_encode_special_tokens(tokenizer):
    """The original parses role tokens in text only with encode_special_tokens=True; these are those ids."""
    for text, ids in REFERENCE["role_text_ids"].items():
        assert tokenizer.encode(text, add_special_tokens=False) == ids
        assert ids != REFERENCE["role_text_ids_default"][text]


def test_every_special_token_maps_to_its_original_id(tokenizer):
    assert REFERENCE["special_tokens"]["<|observation|>"] == 64797
    for token, token_id in REFERENCE["special_tokens"].items():
        assert tokenizer.convert_tokens_to_ids(token) == token_id, token
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id], token
        assert tokenizer.decode([token_id]) == token
    assert set(GLM_SPECIAL_TOKENS) <= set(tokenizer.all_special_tokens)


def test_len_counts_the_role_tokens_the_originals_len_leaves_out(tokenizer):
    """The original's len() is 64796 on transformers >= 4.34 (it misses <|assistant|>, <|observation|>) while its
    vocab_size is 64798: the fast tokenizer holds every id."""
    assert REFERENCE["len_tokenizer"] == 64796 and REFERENCE["vocab_size"] == 64798
    assert len(tokenizer) == REFERENCE["vocab_size"] == REFERENCE["sp_pieces"] + len(GLM_SPECIAL_TOKENS)


def test_pad_eos_bos_unk_and_padding_side_as_the_original(tokenizer):
    special = REFERENCE["tokenizer_special"]
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == (special["pad_token"], special["pad_token_id"]) == ("<unk>", 0)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == (special["eos_token"], special["eos_token_id"]) == ("</s>", 2)
    assert tokenizer.bos_token is None and special["bos_token"] is None
    assert tokenizer.unk_token == special["unk_token"]
    assert tokenizer.padding_side == special["padding_side"] == "left"


def test_decode_round_trips_and_equals_the_original(tokenizer):
    for text in PROBES["texts"]:
        assert tokenizer.decode(REFERENCE["plain_token_ids"][text]) == REFERENCE["decode"][text] == text
        assert tokenizer.decode(REFERENCE["token_ids"][text]) == REFERENCE["decode_with_prefix"][text]
        assert tokenizer.decode(REFERENCE["token_ids"][text], skip_special_tokens=True) == text
    license_text = (FIXTURE / "MODEL_LICENSE").read_text("utf-8")
    assert tokenizer.decode(REFERENCE["extra_token_ids"]["MODEL_LICENSE"]) == license_text


def test_saved_tokenizer_reloads_with_the_same_ids(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.is_fast and len(loaded) == len(tokenizer)
    for text in PROBES["texts"]:
        assert loaded.encode(text) == REFERENCE["token_ids"][text]
    for text, ids in REFERENCE["role_text_ids"].items():
        assert loaded.encode(text, add_special_tokens=False) == ids
    assert (loaded.pad_token_id, loaded.eos_token_id, loaded.padding_side) == (0, 2, "left")
    assert loaded.chat_template == CHAT_TEMPLATE


# --- 4. the chat ids -------------------------------------------------------------------------------------------------


def conversation() -> tuple[str | None, list[Message]]:
    system = None
    messages = []
    for turn in PROBES["conversation"]:
        if turn["role"] == "system":
            system = turn["content"]
        else:
            messages.append(Message(ROLES[turn["role"]], turn["content"]))
    return system, messages


def test_tunelab_chatglm3_template_gives_build_chat_input_ids(tokenizer):
    """`template: chatglm3` rendered as text and tokenized = the original's build_chat_input (system kept)."""
    system, messages = conversation()
    ids = encode_prompt(tokenizer, get_template("chatglm3"), messages, system=system)
    assert ids == REFERENCE["chat_ids"]
    assert ids[:3] == [64790, 64792, 64794] and ids[-1] == 64796


def test_saved_chat_template_gives_build_chat_input_ids(tokenizer):
    ids = tokenizer.apply_chat_template(PROBES["conversation"], add_generation_prompt=True, tokenize=True,
                                        return_dict=False)
    assert list(ids) == REFERENCE["chat_ids"]


def test_each_turn_is_role_token_newline_content(tokenizer):
    """`build_single_message`: [<|role|>] + sp("\\n") + sp(content) == the text "<|role|>\\n content" tokenized."""
    for turn, ids in zip(PROBES["conversation"], REFERENCE["chat_messages"]):
        text = f"<|{turn['role']}|>\n {turn['content']}"
        assert tokenizer.encode(text, add_special_tokens=False) == ids


def test_chat_stops_on_the_originals_chat_stop_ids(tokenizer):
    assert sorted(stop_token_ids(tokenizer, get_template("chatglm3"))) == sorted(REFERENCE["chat_stop_ids"])


# --- 5. the native model trains and generates -------------------------------------------------------------------


def _token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="none")


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_padding_free_rows_keep_examples_apart(model, eager_model, attention):
    """tunelab's padding-free rows: examples back to back, position ids restarting, no attention mask."""
    net = model if attention == "sdpa" else eager_model
    net.train()
    first, second = REFERENCE["input_ids"][:17], REFERENCE["input_ids"][17:]
    packed = torch.tensor([first + second])
    positions = torch.tensor([list(range(len(first))) + list(range(len(second)))])
    labels = packed.clone()
    labels[0, len(first)] = -100
    with torch.no_grad():
        out = net(input_ids=packed, position_ids=positions, labels=labels, use_cache=False)
        alone = [net(input_ids=torch.tensor([x]), use_cache=False).logits[0] for x in (first, second)]
    logits = out.logits[0]
    assert max_diff(logits[: len(first)], alone[0]) < 1e-5
    assert max_diff(logits[len(first):], alone[1]) < 1e-5
    losses = [_token_losses(logits[: len(first)], packed[0, : len(first)]),
              _token_losses(logits[len(first):], packed[0, len(first):])]
    singles = [_token_losses(a, torch.tensor(x)) for a, x in zip(alone, (first, second))]
    for packed_loss, single in zip(losses, singles):
        assert abs(packed_loss.mean().item() - single.mean().item()) < 1e-5
    assert out.loss.item() == pytest.approx(torch.cat(singles).mean().item(), abs=1e-5)


def test_loss_accepts_num_items_in_batch(model):
    model.train()
    with torch.no_grad():
        mean = model(input_ids=ids_tensor(), labels=ids_tensor(), use_cache=False).loss
        summed = model(input_ids=ids_tensor(), labels=ids_tensor(), use_cache=False, num_items_in_batch=78).loss
    assert summed.item() == pytest.approx(mean.item() * 39 / 78, rel=1e-5)


def test_last_hidden_state_is_post_final_norm_with_logits_to_keep(model):
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids_tensor(), output_hidden_states=True, logits_to_keep=1, use_cache=False)
    assert out.logits.shape[1] == 1
    last = out.hidden_states[-1]
    assert last.shape[1] == 40
    full = last[0] @ model.lm_head.weight.T
    assert max_diff(cols(full), REFERENCE["eval_logits"]) < ATOL
    assert max_diff(full[-1], out.logits[0, -1]) < 1e-5


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(native_weights, original_config):
    grads = []
    for checkpointing in (False, True):
        net = build_native(native_weights, original_config)
        if checkpointing:
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # as train/recipe.py calls it
        net.train()
        loss = net(input_ids=ids_tensor(), labels=ids_tensor(), use_cache=False).loss
        loss.backward()
        grads.append((loss.item(), net.model.layers[0].self_attn.q_proj.weight.grad.clone()))
    assert grads[0][0] == pytest.approx(REFERENCE["loss"], rel=1e-5)
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-6)
    assert max_diff(grads[1][1], grads[0][1]) < 1e-6
    assert grads[0][1].abs().sum().item() > 0


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generate_equals_the_original(model, use_cache):
    model.eval()
    out = model.generate(ids_tensor(REFERENCE["input_ids"][:12]), max_new_tokens=8, do_sample=False,
                         use_cache=use_cache, eos_token_id=None, pad_token_id=0)
    assert out[0, 12:].tolist() == REFERENCE["greedy_ids"]


def test_chat_generate_with_the_native_generation_config_equals_the_original(model):
    """The native config's eos list (</s>, <|user|>, <|observation|>) is the original chat()'s stop list."""
    model.eval()
    generation = GenerationConfig.from_model_config(model.config)
    assert generation.eos_token_id == REFERENCE["chat_stop_ids"]
    chat = torch.tensor([REFERENCE["chat_ids"]])
    out = model.generate(chat, attention_mask=torch.ones_like(chat), generation_config=generation,
                         max_new_tokens=8, do_sample=False)
    assert out[0, chat.shape[1]:].tolist() == REFERENCE["greedy_chat_ids"]


def test_the_cached_native_folder_loads_with_plain_transformers_and_lora(tmp_path):
    """convert.native_folder (the lead's load-time cache) with this family: config, tokenizer and weights that
    AutoModelForCausalLM / AutoTokenizer load without remote code; LoRA on the mapped names attaches."""
    from peft import LoraConfig, get_peft_model

    from tunelab.model.legacy import native_lora_targets
    from tunelab.model.legacy.convert import native_folder

    folder = native_folder(FIXTURE, FAMILY, tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.encode(PROBES["texts"][0]) == REFERENCE["token_ids"][PROBES["texts"][0]]
    loaded.eval()
    with torch.no_grad():
        logits = loaded(input_ids=ids_tensor()).logits
    assert max_diff(cols(logits[0]), REFERENCE["eval_logits"]) < ATOL
    targets = native_lora_targets(["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], FAMILY)
    assert targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"]
    peft_model = get_peft_model(loaded, LoraConfig(r=2, target_modules=targets))
    lora_layers = [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A")]
    assert len(lora_layers) == 2 * len(targets)  # every target in both layers
