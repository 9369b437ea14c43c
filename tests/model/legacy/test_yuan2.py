"""Yuan 2.0 loaded natively as tunelab's TunelabYuan2ForCausalLM (src/tunelab/model/legacy/yuan2*.py).

The numbers come from tests/fixtures/legacy_reference/yuan2.json, written by scripts/oracle/reference_yuan2.py
running the ORIGINAL yuan_hf_model.py and the hub's LlamaTokenizer (slow, sentencepiece) under transformers
4.53.3 on ../shared/fixtures/legacy/yuan2 (tiny random weights, the real vocabulary). No oracle runs here.

Train vs eval: the original computes the same in both modes (its LFA's train and inference paths agree without a
cache, and `reset_position_ids: true` sends eval through the training mask), and so does the native class.
Where the native class deliberately differs from the original (both pinned below): it honours the attention
mask (the original ignores it and attends to left padding), and restarting position ids start a new sequence
for attention and for the LFA convolutions (tunelab's packed rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from tunelab.data.conversation import Message, Role
from tunelab.data.encode import encode_prompt
from tunelab.data.templates import get_template
from tunelab.model.legacy.yuan2 import FAMILY, README_SPECIAL_TOKENS, native_config
from tunelab.model.legacy.yuan2_modeling import TunelabYuan2Cache, TunelabYuan2ForCausalLM
from tunelab.model.packing_isolation import probe_isolation

FIXTURE = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "legacy" / "yuan2"
REFERENCE = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "legacy_reference" / "yuan2.json")
                       .read_text(encoding="utf-8"))
PROBES = json.loads((Path(__file__).resolve().parents[3] / "scripts" / "oracle" / "probes.json").read_text("utf-8"))
ATOL = 1e-4
PAD = REFERENCE["padded_pad"]
EOD = 77185
IDS = REFERENCE["input_ids"]


@pytest.fixture(scope="module")
def original_config() -> dict:
    return json.loads((FIXTURE / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def original_weights() -> dict[str, torch.Tensor]:
    """As stored: bfloat16 (the fixture's values are bf16-exact, so float32 copies are exact too)."""
    return load_file(FIXTURE / "model.safetensors")


@pytest.fixture(scope="module")
def native_weights(original_weights, original_config) -> dict[str, torch.Tensor]:
    return FAMILY.to_native({k: v.float() for k, v in original_weights.items()}, original_config)


def build_native(native_weights, original_config, attention: str = "eager", **overrides) -> TunelabYuan2ForCausalLM:
    FAMILY.register()
    config = AutoConfig.for_model(**{**FAMILY.native_config(original_config), **overrides})
    config._attn_implementation = attention
    model = TunelabYuan2ForCausalLM(config).float()
    # the checkpoint has no lm_head.weight (tied); strict loading sees the tie's alias of the embedding
    model.load_state_dict({**native_weights, "lm_head.weight": native_weights["model.embed_tokens.weight"]}, strict=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    return model


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def model(request, native_weights, original_config) -> TunelabYuan2ForCausalLM:
    return build_native(native_weights, original_config, request.param)


@pytest.fixture(scope="module")
def eager(native_weights, original_config) -> TunelabYuan2ForCausalLM:
    return build_native(native_weights, original_config, "eager").eval()


@pytest.fixture(scope="module")
def tokenizer():
    return FAMILY.build_tokenizer(FIXTURE)


def cols(logits: torch.Tensor, key: str = "columns") -> torch.Tensor:
    return logits[..., REFERENCE[key]]


# ---------------------------------------------------------------- 1. logits parity


def test_train_mode_logits_and_loss_match_the_original(model) -> None:
    model.train()
    x = torch.tensor([IDS])
    with torch.no_grad():
        out = model(input_ids=x, labels=x, use_cache=False)
    assert torch.allclose(cols(out.logits[0]), torch.tensor(REFERENCE["logits"]), atol=ATOL)
    assert torch.allclose(torch.logsumexp(out.logits[0], -1), torch.tensor(REFERENCE["logsumexp"]), atol=ATOL)
    assert float(out.loss) == pytest.approx(REFERENCE["loss"], rel=1e-5)


def test_eval_mode_logits_match_the_original(model) -> None:
    model.eval()
    x = torch.tensor([IDS])
    with torch.no_grad():
        out = model(input_ids=x, labels=x)
    assert torch.allclose(cols(out.logits[0]), torch.tensor(REFERENCE["eval_logits"]), atol=ATOL)
    assert torch.allclose(torch.logsumexp(out.logits[0], -1), torch.tensor(REFERENCE["eval_logsumexp"]), atol=ATOL)
    assert float(out.loss) == pytest.approx(REFERENCE["eval_loss"], rel=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_attention_restarts_after_every_eod_as_in_the_original(model, train: bool) -> None:
    """`reset_attention_mask`: the 40 ids with <eod> at 9 and 24, train and eval mode alike."""
    model.train(train)
    x = torch.tensor([REFERENCE["eod_ids"]])
    with torch.no_grad():
        out = model(input_ids=x, labels=x, use_cache=False)
    expected = torch.tensor(REFERENCE["eod_logits" if train else "eod_eval_logits"])
    assert torch.allclose(cols(out.logits[0], "eod_columns"), expected, atol=ATOL)
    assert float(out.loss) == pytest.approx(REFERENCE["eod_loss"], rel=1e-5)


def test_reset_attention_mask_false_attends_across_eod(native_weights, original_config) -> None:
    model = build_native(native_weights, original_config, reset_attention_mask=False).eval()
    x = torch.tensor([REFERENCE["eod_ids"]])
    with torch.no_grad():
        logits = cols(model(input_ids=x).logits[0], "eod_columns")
    expected = torch.tensor(REFERENCE["eod_eval_logits"])
    assert torch.allclose(logits[:10], expected[:10], atol=ATOL)  # up to the first <eod> nothing differs
    assert (logits[10:] - expected[10:]).abs().max() > 1e-2


def test_padded_batch_honours_the_attention_mask(model) -> None:
    """Row 0 is the original's. Row 1 (left-padded) gives what the original computes for the tail ALONE: the
    native class honours the mask (and restarts the convolutions after the padding), where the original ignores
    the mask and lets the real tokens attend to (and convolve) the padding, a difference of order 10."""
    model.eval()
    tail = IDS[PAD:]
    batch = torch.tensor([IDS, [0] * PAD + tail])
    mask = torch.tensor([[1] * len(IDS), [0] * PAD + [1] * len(tail)])
    with torch.no_grad():
        logits = model(input_ids=batch, attention_mask=mask).logits
    assert torch.allclose(cols(logits[0]), torch.tensor(REFERENCE["padded_logits"][0]), atol=ATOL)
    assert torch.allclose(cols(logits[1, PAD:]), torch.tensor(REFERENCE["tail_eval_logits"]), atol=ATOL)
    assert (cols(logits[1, PAD:]) - torch.tensor(REFERENCE["padded_logits"][1])).abs().max() > 1.0


def test_eod_input_embedding_gets_no_gradient_as_in_the_original(native_weights, original_config) -> None:
    """The original's embedding has padding_idx = pad_token_id = 77185 (<eod>): reading <eod> as an input
    trains nothing (the tied head still trains that row as an output)."""
    model = build_native(native_weights, original_config).train()
    assert model.model.embed_tokens.padding_idx == EOD
    model.model.embed_tokens(torch.tensor([[EOD, IDS[0]]])).sum().backward()
    grad = model.model.embed_tokens.weight.grad
    assert grad[EOD].abs().max() == 0 and grad[IDS[0]].abs().max() > 0


# ---------------------------------------------------------------- loading, config, weights


def test_loads_from_a_native_folder_with_the_head_tied(tmp_path, native_weights, original_config) -> None:
    """No lm_head.weight in the file (the original's checkpoint has none): transformers 5 must tie it, where
    the original class loads with the head missing (NaN loss)."""
    FAMILY.register()
    (tmp_path / "config.json").write_text(json.dumps(FAMILY.native_config(original_config)), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in native_weights.items()}, str(tmp_path / "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert type(model) is TunelabYuan2ForCausalLM
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert torch.equal(model.model.embed_tokens.weight, native_weights["model.embed_tokens.weight"])
    x = torch.tensor([IDS])
    assert float(model(input_ids=x, labels=x).loss) == pytest.approx(REFERENCE["loss"], rel=1e-5)


def test_strict_loading_misses_only_the_tied_head(native_weights, original_config) -> None:
    model = TunelabYuan2ForCausalLM(AutoConfig.for_model(**FAMILY.native_config(original_config)))
    result = model.load_state_dict(native_weights, strict=False)
    assert result.missing_keys == ["lm_head.weight"] and result.unexpected_keys == []


def test_to_original_of_to_native_is_bit_exact(original_weights, original_config) -> None:
    back = FAMILY.to_original(FAMILY.to_native(original_weights, original_config), original_config)
    assert list(back) == list(original_weights)
    for name, tensor in original_weights.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name


def test_to_native_drops_a_stored_tied_head_and_rotary_buffers(original_weights, original_config) -> None:
    extra = {**original_weights, "lm_head.weight": original_weights["model.embed_tokens.weight"],
             "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4)}
    assert set(FAMILY.to_native(extra, original_config)) == set(original_weights)
    untied = {**original_config, "tie_word_embeddings": False}
    assert "lm_head.weight" in FAMILY.to_native(extra, untied)


def test_native_config_is_complete_and_round_trips(original_config) -> None:
    FAMILY.register()
    native = native_config(original_config)
    assert native["architectures"] == ["TunelabYuan2ForCausalLM"] and native["model_type"] == "tunelab_yuan2"
    assert native["dtype"] == original_config["torch_dtype"]
    assert (native["bos_token_id"], native["eos_token_id"], native["pad_token_id"], native["eod_token_id"]) == (
        EOD, EOD, EOD, EOD)
    assert native["rope_parameters"] == {"rope_type": "default", "rope_theta": 10000.0}
    assert native["max_position_embeddings"] == 8192 and native["tie_word_embeddings"] is True
    assert native["reset_attention_mask"] is True
    config = AutoConfig.for_model(**native)
    saved = config.to_dict()
    for key, value in native.items():
        if key != "dtype":
            assert saved[key] == value, key
    assert str(config.dtype).endswith("float32")


def test_matches_yuan_configs_only(original_config) -> None:
    assert FAMILY.matches(original_config)
    assert FAMILY.matches({"architectures": ["YuanForCausalLM"]})
    assert not FAMILY.matches({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})


@pytest.mark.parametrize("extra", [{"use_shareqk": True}, {"moe_config": {"moe_num_experts": 32}}])
def test_unsupported_yuan_variants_are_refused(original_config, extra) -> None:
    from tunelab.errors import UserError

    with pytest.raises(UserError):
        native_config({**original_config, **extra})


def test_lora_targets_are_the_seven_linear_names(native_weights, original_config) -> None:
    model = build_native(native_weights, original_config)
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    assert dict(FAMILY.lora_targets) == {name: (name,) for name in
                                         ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
    assert linear - {"lm_head"} == set(FAMILY.lora_targets)
    convs = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)}
    assert convs == {f"model.layers.{i}.self_attn.lf_gate.conv{j}" for i in range(2) for j in (1, 2)}


# ---------------------------------------------------------------- 3. tokenizer


def test_token_ids_match_the_original_on_every_probe(tokenizer) -> None:
    for text, ids in REFERENCE["token_ids"].items():
        assert tokenizer.encode(text) == ids, text
        assert tokenizer.encode(text, add_special_tokens=False) == ids, text


def test_token_ids_match_on_special_token_text(tokenizer) -> None:
    """The model card's tokenizer (eos <eod>, Yuan's tokens added): special tokens split out of the text, the
    text after one gets the dummy prefix (legacy). The one difference: there the text "</s>" is not special
    (it lost that when eos became <eod>); here, as in the hub files, it stays the control token 2."""
    for text, ids in REFERENCE["readme_mixed_token_ids"].items():
        if "</s>" in text:
            assert tokenizer.encode(text) == REFERENCE["mixed_token_ids"][text] == [1, 921, 2, 0]
            continue
        assert tokenizer.encode(text) == ids, text


def test_special_tokens_have_the_original_ids(tokenizer) -> None:
    assert REFERENCE["special_tokens"]["<mask>"] == 134953 and REFERENCE["special_tokens"]["<FIM_MIDDLE>"] == 134957
    for token, index in {**REFERENCE["special_tokens"], **REFERENCE["hub_special_tokens"]}.items():
        assert tokenizer.convert_tokens_to_ids(token) == index, token
        assert tokenizer.encode(token) == [index], token
    assert set(README_SPECIAL_TOKENS) | {"<eod>", "<s>", "</s>", "<unk>"} <= set(tokenizer.all_special_tokens)
    assert tokenizer.encode("<n>") == [529, 29876, 29958]  # an ordinary piece (77186), as in the original
    assert tokenizer.convert_tokens_to_ids("<n>") == REFERENCE["vocab_pieces"]["<n>"]


def test_tokenizer_sizes_and_special_ids(tokenizer) -> None:
    """As the model card's tokenizer: 134958 tokens, bos <s> (never added), eos <eod>, sep <sep>, no pad
    (tunelab's loader sets pad = eos = <eod>, the model's pad_token_id)."""
    readme = REFERENCE["readme_tokenizer"]
    assert len(tokenizer) == readme["len"] == 134958
    for kind in ("bos", "eos", "pad", "unk", "sep"):
        assert getattr(tokenizer, f"{kind}_token_id") == readme[f"{kind}_token_id"], kind
    assert tokenizer.encode("x") == [921]


def test_longer_texts_match_except_where_sentencepiece_breaks_score_ties(tokenizer) -> None:
    """LICENSE-Yuan: identical. yuan_hf_model.py: 7 spots of its 15900 ids are segmented differently (the
    same text, e.g. "[:,:," one sentencepiece piece, three here). 57768 of the vocabulary's pieces share the
    score 0.0; sentencepiece merges the LEFTMOST of equally scored pairs, a BPE merge table can only rank pairs,
    so no fast tokenizer reproduces every tie (measured on 8935 texts: 0.3 % of the tokens of source code
    differ; transformers 4.53's own LlamaTokenizerFast of this folder differs from the slow one on 1.8x as
    many texts as this one)."""
    import difflib

    license_ids = tokenizer.encode((FIXTURE / "LICENSE-Yuan").read_text(encoding="utf-8"))
    assert license_ids == REFERENCE["extra_token_ids"]["LICENSE-Yuan"]
    ids = tokenizer.encode((FIXTURE / "yuan_hf_model.py").read_text(encoding="utf-8"))
    expected = REFERENCE["extra_token_ids"]["yuan_hf_model.py"]
    spots = [op for op in difflib.SequenceMatcher(a=ids, b=expected, autojunk=False).get_opcodes() if op[0] != "equal"]
    assert len(spots) == 7 and all(op[0] == "replace" for op in spots)
    for _, a0, a1, b0, b1 in spots:
        assert "".join(tokenizer.convert_ids_to_tokens(ids[a0:a1])) == "".join(tokenizer.convert_ids_to_tokens(expected[b0:b1]))
    _, a0, a1, b0, b1 = spots[0]
    assert tokenizer.convert_ids_to_tokens(ids[a0:a1]) == ["[:", ",:", ","]
    assert tokenizer.convert_ids_to_tokens(expected[b0:b1]) == ["[:,:,"]


def test_decode_round_trips(tokenizer) -> None:
    """decode(encode(text)) == text, also around special tokens (the dummy prefix after one is dropped).
    The original's legacy decode does not round-trip: it drops a leading space and inserts one before a
    special token (" a<eod>b" for "a<eod>b"); those are its bugs, not reproduced."""
    for text in [*REFERENCE["token_ids"], *REFERENCE["readme_mixed_token_ids"]]:
        assert tokenizer.decode(tokenizer.encode(text)) == text, text
    assert REFERENCE["readme_decode"]["a<eod>b"] == " a<eod>b"
    assert tokenizer.decode(tokenizer.encode("a<eod>b<sep>"), skip_special_tokens=True) == "a b"


def test_saved_tokenizer_reloads_with_the_same_ids(tokenizer, tmp_path) -> None:
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in [*REFERENCE["token_ids"], *REFERENCE["readme_mixed_token_ids"]]:
        assert reloaded.encode(text) == tokenizer.encode(text), text
    assert (reloaded.eos_token, reloaded.sep_token, len(reloaded)) == ("<eod>", "<sep>", 134958)


def test_hub_chat_template_gives_the_original_chat_ids(tokenizer) -> None:
    ids = tokenizer.apply_chat_template(PROBES["conversation"], tokenize=True, add_generation_prompt=True,
                                        return_dict=False)
    assert list(ids) == REFERENCE["chat_ids"]


# ---------------------------------------------------------------- 4. tunelab's template


def _conversation() -> tuple[str, list[Message]]:
    turns = PROBES["conversation"]
    roles = {"user": Role.USER, "assistant": Role.ASSISTANT}
    return turns[0]["content"], [Message(roles[t["role"]], t["content"]) for t in turns[1:]]


def test_tunelab_yuan_template_renders_the_anchor_format(tokenizer) -> None:
    """What `template: yuan` renders, against the hub template's text (the difference the xfail below reports)."""
    system, messages = _conversation()
    text = tokenizer.decode(encode_prompt(tokenizer, get_template("yuan"), messages, system=system))
    assert text == "You are a helpful assistant.你好<sep>你好！有什么可以帮你的吗？<eod>\nWhat is 2+2?<sep>"
    assert REFERENCE["chat_text"] == "You are a helpful assistant.\n你好<n>你好！有什么可以帮你的吗？<n>What is 2+2?<sep>"


@pytest.mark.xfail(strict=True, reason=(
    "template `yuan` (LLaMA-Factory's) differs from the hub chat_template: no '\\n' after the system text, "
    "'<sep>' after every user turn and '<eod>\\n' after every answer, where the hub template joins turns with "
    "the text '<n>' (three tokens) and writes '<sep>' only after the last turn; with reset_attention_mask an "
    "<eod> inside the prompt also cuts the earlier turns out of the attention"))
def test_tunelab_yuan_template_gives_the_hub_chat_ids(tokenizer) -> None:
    system, messages = _conversation()
    assert encode_prompt(tokenizer, get_template("yuan"), messages, system=system) == REFERENCE["chat_ids"]


# ---------------------------------------------------------------- 5. training


def _packed(lengths: tuple[int, ...], seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    examples = [torch.randint(1000, 130000, (n,), generator=generator) for n in lengths]
    examples[0][-1] = EOD  # tunelab's examples end with the template's <eod>
    packed = torch.cat(examples)[None]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    return examples, packed, positions


def _loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:-1].float(), ids[1:])


def test_padding_free_rows_give_each_example_its_own_loss(model) -> None:
    """Restarting position ids, no mask, no cache: per-example losses and logits equal the examples alone, so
    neither attention nor the LFA convolutions leak from one example into the next."""
    model.train()
    lengths = (9, 6, 11)
    examples, packed, positions = _packed(lengths)
    with torch.no_grad():
        out = model(input_ids=packed, position_ids=positions, use_cache=False)
        alones = [model(input_ids=example[None], use_cache=False).logits[0] for example in examples]
    start = 0
    for example, alone in zip(examples, alones):
        part = out.logits[0, start:start + len(example)]
        assert torch.allclose(part, alone, atol=1e-5)
        assert float(_loss(part, example)) == pytest.approx(float(_loss(alone, example)), abs=1e-5)
        start += len(example)


def test_padding_free_gradients_equal_the_examples_alone(native_weights, original_config) -> None:
    model = build_native(native_weights, original_config, "sdpa").train()
    examples, packed, positions = _packed((7, 5))
    labels = packed.clone()
    labels[0, len(examples[0])] = -100  # no target across the boundary
    model(input_ids=packed, position_ids=positions, labels=labels, use_cache=False).loss.backward()
    packed_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    count = sum(len(e) - 1 for e in examples)
    for example in examples:
        x = example[None]
        (model(input_ids=x, labels=x, use_cache=False).loss * (len(example) - 1) / count).backward()
    for name, param in model.named_parameters():
        assert torch.allclose(packed_grads[name], param.grad, rtol=1e-4, atol=1e-5), name


def test_packing_isolation_probe_agrees(model) -> None:
    agree, difference = probe_isolation(model)
    assert agree and difference < 1e-5


def test_hidden_states_and_logits_to_keep(model) -> None:
    """tunelab's fused loss computes logits as hidden_states[-1] @ lm_head.weight.T itself."""
    model.eval()
    x = torch.tensor([IDS[:16]])
    with torch.no_grad():
        full = model(input_ids=x).logits
        out = model(input_ids=x, output_hidden_states=True, logits_to_keep=1)
    assert out.logits.shape == (1, 1, full.shape[-1]) and len(out.hidden_states) == 3
    assert torch.allclose(out.logits[0, -1], full[0, -1], atol=1e-5)
    assert torch.allclose(out.hidden_states[-1] @ model.lm_head.weight.T, full, atol=1e-5)
    assert torch.allclose(out.hidden_states[0], model.model.embed_tokens(x))


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(native_weights, original_config, reentrant) -> None:
    """As tunelab enables it (train/recipe.py: gradient_checkpointing_enable with the checkpoint kwargs)."""
    x = torch.tensor([REFERENCE["eod_ids"]])
    grads = []
    for checkpointing in (False, True):
        model = build_native(native_weights, original_config, "sdpa").train()
        if checkpointing:
            with pytest.warns(FutureWarning):
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
            assert model.model.layers[0].gradient_checkpointing
        loss = model(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        grads.append((float(loss), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for name, grad in grads[0][1].items():
        assert torch.allclose(grad, grads[1][1][name], atol=1e-6), name


def test_lora_all_linear_wraps_the_seven_projections(native_weights, original_config) -> None:
    """peft's `all-linear` (tunelab's `lora_target: all`) takes the seven projections, not the LFA's convs."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(build_native(native_weights, original_config),
                           LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    wrapped = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == set(FAMILY.lora_targets)
    x = torch.tensor([IDS[:12]])
    model(input_ids=x, labels=x, use_cache=False).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_sdpa_and_eager_agree(native_weights, original_config) -> None:
    examples, packed, positions = _packed((8, 12))
    outputs = []
    for attention in ("eager", "sdpa"):
        model = build_native(native_weights, original_config, attention).eval()
        with torch.no_grad():
            outputs.append(model(input_ids=packed, position_ids=positions).logits)
            batch = torch.tensor([REFERENCE["eod_ids"], [0] * PAD + REFERENCE["eod_ids"][PAD:]])
            mask = (batch != 0).long()
            outputs.append(model(input_ids=batch, attention_mask=mask).logits)
    assert torch.allclose(outputs[0], outputs[2], atol=1e-5)
    assert torch.allclose(outputs[1], outputs[3], atol=1e-5)


# ---------------------------------------------------------------- generation with the cache


@pytest.mark.parametrize("key,prompt", [("greedy_ids", IDS[:12]), ("greedy_ids_eod", REFERENCE["eod_ids"][:12]),
                                        ("greedy_ids_one", IDS[:1])])
def test_greedy_generation_matches_the_original_with_and_without_cache(model, key, prompt) -> None:
    model.eval()
    x = torch.tensor([prompt])
    cached = model.generate(x, max_new_tokens=8, do_sample=False)[0, len(prompt):].tolist()
    uncached = model.generate(x, max_new_tokens=8, do_sample=False, use_cache=False)[0, len(prompt):].tolist()
    assert cached == uncached == REFERENCE[key]


@pytest.mark.parametrize("chunks", [(1,) * 14, (5, 1, 1, 4, 3), (9, 5)])
def test_cached_forward_equals_the_full_forward(eager, chunks) -> None:
    """The LFA state and the <eod> segments carried in the cache: feeding the sequence in pieces (one token at a
    time, or chunks) gives the full forward's logits; the sequence holds <eod>s, one at a chunk's end."""
    ids = torch.tensor([[*IDS[:4], EOD, *IDS[4:8], EOD, *IDS[8:12]]])
    with torch.no_grad():
        full = eager(input_ids=ids).logits
        cache, start, pieces = None, 0, []
        for size in chunks:
            out = eager(input_ids=ids[:, start:start + size], cache=cache, use_cache=True)
            cache, start = out.cache, start + size
            pieces.append(out.logits)
    assert isinstance(cache, TunelabYuan2Cache) and cache.get_seq_length() == ids.shape[1]
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=ATOL)


def test_left_padded_batch_generation_equals_each_prompt_alone(model) -> None:
    model.eval()
    prompts = [IDS[:12], [*IDS[20:25], EOD, *IDS[26:29]]]
    width = max(map(len, prompts))
    batch = torch.tensor([[EOD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    together = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=EOD,
                              eos_token_id=None)[:, width:]
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, eos_token_id=None)
        assert together[row].tolist() == alone[0, len(prompt):].tolist()


def test_beam_search_runs_with_the_cache(eager) -> None:
    x = torch.tensor([IDS[:10]])
    kwargs = dict(max_new_tokens=5, do_sample=False, num_beams=3, eos_token_id=None)
    assert eager.generate(x, **kwargs).tolist() == eager.generate(x, use_cache=False, **kwargs).tolist()


def test_cache_row_operations_move_the_convolution_state_and_segments(eager) -> None:
    """reorder_cache (beam search), batch_select_indices and batch_repeat_interleave act on the LFA state and
    the <eod> segments as on the keys and values."""
    a, b = [*IDS[:3], EOD, *IDS[3:5]], IDS[10:16]
    step = torch.tensor([[IDS[30]], [IDS[31]]])
    with torch.no_grad():
        cache = eager(input_ids=torch.tensor([a, b]), use_cache=True).cache
        cache.reorder_cache(torch.tensor([1, 0]))
        reordered = eager(input_ids=step, cache=cache, use_cache=True).logits[:, -1]
        expected = eager(input_ids=torch.tensor([[*b, IDS[30]], [*a, IDS[31]]])).logits[:, -1]
        assert torch.allclose(reordered, expected, atol=ATOL)
        cache = eager(input_ids=torch.tensor([a, b]), use_cache=True).cache
        cache.batch_select_indices(torch.tensor([0]))
        cache.batch_repeat_interleave(2)
        repeated = eager(input_ids=step, cache=cache, use_cache=True).logits[:, -1]
        expected = eager(input_ids=torch.tensor([[*a, IDS[30]], [*a, IDS[31]]])).logits[:, -1]
    assert torch.allclose(repeated, expected, atol=ATOL)


def test_a_filled_foreign_cache_is_refused(eager) -> None:
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.update(torch.zeros(1, 4, 3, 8), torch.zeros(1, 4, 3, 8), 0)
    with pytest.raises(ValueError, match="TunelabYuan2Cache"):
        eager(input_ids=torch.tensor([IDS[:2]]), cache=cache, use_cache=True)
