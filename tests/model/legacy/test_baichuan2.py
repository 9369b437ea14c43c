"""Baichuan2-7B (-> LlamaForCausalLM) and Baichuan2-13B (-> tunelab_baichuan2_alibi) against their ORIGINAL code.

The numbers come from tests/fixtures/legacy_reference/baichuan2_{7b,13b}.json, written by
scripts/oracle/reference_baichuan2.py with the original remote code (model: transformers 4.53.3; tokenizer and
build_chat_input: 4.33.3, the last version BaichuanTokenizer runs on). The checkpoints are the tiny random ones
of ../shared/fixtures/legacy/baichuan2_{7b,13b} (real vocabulary, real tokenizer.model).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tunelab.model.legacy import baichuan2
from tunelab.model.legacy.baichuan2 import FAMILY_7B, FAMILY_13B

LEGACY = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "legacy"
REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "legacy_reference"
PROBES = json.loads(
    (Path(__file__).resolve().parents[3] / "scripts" / "oracle" / "probes.json").read_text("utf-8")
)
FAMILIES = {"baichuan2_7b": FAMILY_7B, "baichuan2_13b": FAMILY_13B}
CHECKPOINTS = sorted(FAMILIES)
IMPLEMENTATIONS = ("sdpa", "eager")
ATOL = 1e-4

pytestmark = pytest.mark.skipif(not LEGACY.is_dir(), reason="the shared legacy fixtures are not checked out")


def _reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text(encoding="utf-8"))


def _config(name: str) -> dict:
    return json.loads((LEGACY / name / "config.json").read_text(encoding="utf-8"))


def _weights(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    # the fixture is stored in bfloat16; the oracle ran it as float32 (exact: the values are bf16-representable)
    return {k: v.to(torch.float32) for k, v in load_file(LEGACY / name / "model.safetensors").items()}


_MODELS: dict[tuple[str, str], torch.nn.Module] = {}
_TOKENIZERS: dict[str, object] = {}


def native_model(name: str, implementation: str = "sdpa") -> torch.nn.Module:
    """The native model built from native_config + to_native + load_state_dict(strict=True), cached."""
    if (name, implementation) not in _MODELS:
        from transformers import AutoConfig, AutoModelForCausalLM

        family = FAMILIES[name]
        if family.register is not None:
            family.register()
        config = AutoConfig.for_model(**family.native_config(_config(name)))
        config._attn_implementation = implementation
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(family.to_native(_weights(name), _config(name)), strict=True)
        _MODELS[name, implementation] = model
    model = _MODELS[name, implementation]
    model.eval()
    return model


def tokenizer(name: str):
    if name not in _TOKENIZERS:
        _TOKENIZERS[name] = FAMILIES[name].build_tokenizer(LEGACY / name)
    return _TOKENIZERS[name]


def _max_diff(a: torch.Tensor, b) -> float:
    return float((a - torch.as_tensor(b, dtype=a.dtype)).abs().max())


# ---------------------------------------------------------------- 1. logits parity with the original


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_train_and_eval_logits_and_loss_equal_the_original(name: str, implementation: str) -> None:
    """Train mode (the original normalises the head in the forward) and eval mode (it overwrote the head
    with the normalised copy; 13B: ALiBi slope·j from the cached mask) give the original's logits."""
    ref = _reference(name)
    model = native_model(name, implementation)
    ids = torch.tensor([ref["input_ids"]])
    with torch.no_grad():
        for mode, prefix in (("train", ""), ("eval", "eval_")):
            model.train(mode == "train")
            out = model(ids, labels=ids)
            logits = out.logits[0]
            assert _max_diff(logits[:, ref["columns"]], ref[f"{prefix}logits"]) < ATOL, mode
            assert _max_diff(torch.logsumexp(logits, -1), ref[f"{prefix}logsumexp"]) < ATOL, mode
            assert float(out.loss) == pytest.approx(ref[f"{prefix}loss"], rel=1e-5), mode
    model.eval()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_left_padded_batch_with_attention_mask_equals_the_original(name: str, implementation: str) -> None:
    ref = _reference(name)
    model = native_model(name, implementation)
    ids, pad = ref["input_ids"], ref["padded_pad"]
    batch = torch.tensor([ids, [0] * pad + ids[pad:]])
    mask = torch.tensor([[1] * len(ids), [0] * pad + [1] * (len(ids) - pad)])
    with torch.no_grad():
        logits = model(batch, attention_mask=mask).logits
    assert _max_diff(logits[0][:, ref["columns"]], ref["padded_logits"][0]) < ATOL
    assert _max_diff(logits[1][pad:, ref["columns"]], ref["padded_logits"][1]) < ATOL


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_right_padding_leaves_the_real_tokens_alone(name: str) -> None:
    model = native_model(name)
    ids = _reference(name)["input_ids"][:20]
    batch = torch.tensor([ids, ids[:15] + [0] * 5])
    mask = torch.tensor([[1] * 20, [1] * 15 + [0] * 5])
    with torch.no_grad():
        logits = model(batch, attention_mask=mask).logits
        alone = model(torch.tensor([ids[:15]])).logits
    assert _max_diff(logits[1, :15], alone[0]) < 1e-5


def test_z_loss_is_max_logit_squared_and_off_in_the_fixture_configs() -> None:
    """The original adds z_loss_weight · mean(max-logit²) over the shifted positions; the configs (and the
    configuration classes' default) have weight 0, so the native cross-entropy equals the original's loss."""
    name = "baichuan2_7b"
    ref = _reference(name)
    assert ref["z_loss_weight"] == 0
    assert baichuan2.z_loss_weight(_config(name)) == 0
    assert baichuan2.z_loss_weight({"z_loss_weight": 0.25}) == 0.25
    model = native_model(name)
    ids = torch.tensor([ref["input_ids"]])
    with torch.no_grad():
        out = model(ids, labels=ids)
    z = out.logits[0, :-1].max(-1).values.pow(2).mean()
    assert float(out.loss + 0.1 * z) == pytest.approx(ref["train_loss_with_z_loss_0_1"], rel=1e-5)


# ---------------------------------------------------------------- 2. weights round trip


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_to_original_inverts_to_native_bit_exactly_except_the_normalised_head(name: str) -> None:
    """Every tensor comes back bit-exactly but the head: NormHead never used its row norms (only the
    directions reach the logits), so to_native stores the normalised rows and the norms are gone. The head
    comes back as exactly its normalised copy, which is what the original itself holds after its first
    eval forward."""
    weights, config = _weights(name), _config(name)
    back = FAMILIES[name].to_original(FAMILIES[name].to_native(weights, config), config)
    assert set(back) == set(weights)
    for key, tensor in weights.items():
        expected = baichuan2.normalise_head(tensor) if key == "lm_head.weight" else tensor
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], expected), key
    assert not torch.equal(back["lm_head.weight"], weights["lm_head.weight"])


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_a_normalised_head_renormalises_to_itself_within_one_ulp(name: str) -> None:
    """native -> original -> native: q/k/v bit-exact; the head is normalised again, which moves some entries
    by at most one float32 ulp of 1.0 (F.normalize is not bitwise idempotent), and the logits not at all
    within 1e-6."""
    config = _config(name)
    family = FAMILIES[name]
    native = family.to_native(_weights(name), config)
    again = family.to_native(family.to_original(native, config), config)
    for key, tensor in native.items():
        if key != "lm_head.weight":
            assert torch.equal(again[key], tensor), key
    head_diff = _max_diff(again["lm_head.weight"], native["lm_head.weight"])
    assert head_diff <= 2.0**-23
    norms = again["lm_head.weight"].norm(dim=-1)
    assert float((norms - 1).abs().max()) < 1e-6


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_w_pack_splits_into_contiguous_q_k_v_thirds(name: str) -> None:
    weights, config = _weights(name), _config(name)
    hidden = config["hidden_size"]
    native = FAMILIES[name].to_native(weights, config)
    packed = weights["model.layers.1.self_attn.W_pack.weight"]
    for third, proj in enumerate(("q_proj", "k_proj", "v_proj")):
        assert torch.equal(
            native[f"model.layers.1.self_attn.{proj}.weight"], packed[third * hidden : (third + 1) * hidden]
        )
    assert not any("W_pack" in key for key in native)


# ---------------------------------------------------------------- config, recognition, loading


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_native_config_is_complete_and_round_trips_through_autoconfig(name: str) -> None:
    from transformers import AutoConfig

    family = FAMILIES[name]
    if family.register is not None:
        family.register()
    native = family.native_config(_config(name))
    required = {
        "architectures",
        "model_type",
        "dtype",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "max_position_embeddings",
        "tie_word_embeddings",
    } | ({"rope_parameters"} if name.endswith("7b") else set())
    assert required <= set(native) and native["tie_word_embeddings"] is False and native["dtype"] == "float32"
    config = AutoConfig.for_model(**native)
    assert config.architectures == native["architectures"]
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)
    assert config.tie_word_embeddings is False
    assert config.dtype == torch.float32  # the original config's torch_dtype
    assert config.max_position_embeddings == 4096
    reloaded = AutoConfig.for_model(**config.to_dict())
    for key in (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "rms_norm_eps",
        "max_position_embeddings",
    ):
        assert getattr(reloaded, key) == native[key] == getattr(config, key), key
    if name == "baichuan2_7b":
        assert config.model_type == "llama"
        assert (
            config.rope_parameters["rope_theta"] == 10000.0
            and config.rope_parameters["rope_type"] == "default"
        )
        assert config.num_key_value_heads == config.num_attention_heads and config.head_dim == 8
        assert config.attention_bias is False and config.mlp_bias is False
    else:
        assert config.model_type == "tunelab_baichuan2_alibi"


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_native_folder_loads_with_auto_model_for_causal_lm(name: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    family = FAMILIES[name]
    if family.register is not None:
        family.register()
    (tmp_path / "config.json").write_text(json.dumps(family.native_config(_config(name))), encoding="utf-8")
    save_file(family.to_native(_weights(name), _config(name)), tmp_path / "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ref = _reference(name)
    with torch.no_grad():
        logits = model.eval()(torch.tensor([ref["input_ids"]])).logits[0]
    assert _max_diff(logits[:, ref["columns"]], ref["eval_logits"]) < ATOL
    assert type(model).__name__ == family.native_config(_config(name))["architectures"][0]


def test_matches_tells_7b_from_13b_and_refuses_baichuan_1() -> None:
    seven, thirteen = _config("baichuan2_7b"), _config("baichuan2_13b")
    assert FAMILY_7B.matches(seven) and not FAMILY_13B.matches(seven)
    assert FAMILY_13B.matches(thirteen) and not FAMILY_7B.matches(thirteen)
    baichuan_1 = {**thirteen, "vocab_size": 64000}  # Baichuan-13B (v1): same model_type, no NormHead
    assert not FAMILY_7B.matches(baichuan_1) and not FAMILY_13B.matches(baichuan_1)
    assert not FAMILY_7B.matches({**seven, "model_type": "llama"})


def test_lora_targets_cover_every_original_linear_and_name_native_linears() -> None:
    names = {
        key.split(".")[-2]
        for key in _weights("baichuan2_13b")
        if key.endswith(".weight") and ".layers." in key and "layernorm" not in key
    }
    assert names == set(FAMILY_7B.lora_targets) == set(FAMILY_13B.lora_targets)
    assert FAMILY_7B.lora_targets["W_pack"] == ("q_proj", "k_proj", "v_proj")
    for name in CHECKPOINTS:
        linears = {
            n.split(".")[-1] for n, m in native_model(name).named_modules() if isinstance(m, torch.nn.Linear)
        }
        targets = {t for native in FAMILIES[name].lora_targets.values() for t in native}
        assert targets <= linears and linears - targets == {"lm_head"}


def test_13b_family_registers_its_classes_and_names_its_code_file() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from tunelab.model.legacy import baichuan2_13b_modeling as modeling

    FAMILY_13B.register()
    config = AutoConfig.for_model(
        "tunelab_baichuan2_alibi",
        hidden_size=16,
        num_attention_heads=2,
        num_hidden_layers=1,
        intermediate_size=32,
        vocab_size=64,
    )
    assert isinstance(config, modeling.TunelabBaichuan2AlibiConfig)
    assert type(AutoModel.from_config(config)) is modeling.TunelabBaichuan2AlibiModel
    assert type(AutoModelForCausalLM.from_config(config)) is modeling.TunelabBaichuan2AlibiForCausalLM
    assert FAMILY_13B.code_file == Path(modeling.__file__) and FAMILY_13B.code_file.is_file()
    assert FAMILY_7B.register is None and FAMILY_7B.code_file is None


def test_modeling_file_imports_only_torch_transformers_and_the_stdlib() -> None:
    import ast

    tree = ast.parse(FAMILY_13B.code_file.read_text(encoding="utf-8"))
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    roots |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert roots <= {"math", "torch", "transformers"}


# ---------------------------------------------------------------- 13B: ALiBi


def test_alibi_slopes_interleave_for_non_power_of_two_heads() -> None:
    """_get_interleave: 4 heads 2^-2 .. 2^-8; 5 heads: those four, then every other slope of 8 heads (2^-1)."""
    from tunelab.model.legacy.baichuan2_13b_modeling import alibi_slopes

    assert alibi_slopes(4) == [2**-2, 2**-4, 2**-6, 2**-8]
    assert alibi_slopes(5) == [2**-2, 2**-4, 2**-6, 2**-8, 2**-1]
    assert alibi_slopes(6) == [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]  # 2^-3, not 2^-2 (interleaved)
    real = alibi_slopes(40)  # Baichuan2-13B: 32 + 8
    assert len(real) == 40
    assert real[:32] == pytest.approx([2 ** (-(i + 1) / 4) for i in range(32)], rel=1e-12)
    assert real[32:] == pytest.approx([2 ** (-(2 * i + 1) / 8) for i in range(8)], rel=1e-12)


def test_train_and_eval_alibi_forms_differ_by_a_row_constant_that_softmax_ignores() -> None:
    """The original's eval bias slope·j (cached future mask) vs train slope·(j - i): per query row they
    differ by slope·i, so the attention probabilities agree (here at 4096 positions, the cache length)."""
    from tunelab.model.legacy.baichuan2_13b_modeling import alibi_slopes, attention_bias

    heads, length = 5, 64
    relative = attention_bias(heads, length, 0)[0]
    slopes = torch.tensor(alibi_slopes(heads))
    j = torch.arange(length, dtype=torch.float32)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    absolute = (slopes[:, None, None] * j[None, None, :]).expand(heads, length, length)
    absolute = absolute.masked_fill(~causal, torch.finfo(torch.float32).min)
    assert not torch.allclose(relative, absolute)
    scores = torch.randn(heads, length, length, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(
        torch.softmax(scores + relative, -1), torch.softmax(scores + absolute, -1), atol=1e-6
    )
    far = 4000 + torch.arange(length, dtype=torch.float32)  # late rows of the 4096-long cached mask
    shifted = (slopes[:, None, None] * (far[None, None, :] - 4000)).expand(heads, length, length)
    late = (slopes[:, None, None] * far[None, None, :]).expand(heads, length, length)
    diff = (
        (
            torch.softmax(scores + shifted.masked_fill(~causal, -1e30), -1)
            - torch.softmax(scores + late.masked_fill(~causal, -1e30), -1)
        )
        .abs()
        .max()
    )
    assert float(diff) < 1e-4


def test_13b_two_d_mask_is_read_as_segment_ids_like_the_original() -> None:
    """mask [1]*12 + [2]*10: the second segment sees only itself, so its logits are those of it alone."""
    model = native_model("baichuan2_13b")
    ids = _reference("baichuan2_13b")["input_ids"]
    first, second = ids[:12], ids[12:22]
    with torch.no_grad():
        both = model(
            torch.tensor([first + second]), attention_mask=torch.tensor([[1] * 12 + [2] * 10])
        ).logits
        alone = model(torch.tensor([second])).logits
    assert _max_diff(both[0, 12:], alone[0]) < 1e-5


# ---------------------------------------------------------------- 5. the native model trains


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_padding_free_rows_keep_examples_apart(name: str, implementation: str) -> None:
    """tunelab's padding-free row: examples back to back, position_ids restarting, no attention mask."""
    model = native_model(name, implementation)
    ids = _reference(name)["input_ids"]
    examples = [ids[:9], ids[9:25], ids[25:40]]
    row = torch.tensor([sum(examples, [])])
    positions = torch.tensor([sum((list(range(len(e))) for e in examples), [])])
    model.train()
    with torch.no_grad():
        packed = model(row, position_ids=positions, use_cache=False).logits[0]
        start = 0
        for example in examples:
            alone = model(torch.tensor([example]), use_cache=False).logits[0]
            part = packed[start : start + len(example)]
            assert _max_diff(part, alone) < 1e-5
            loss_alone = torch.nn.functional.cross_entropy(alone[:-1], torch.tensor(example[1:]))
            loss_packed = torch.nn.functional.cross_entropy(part[:-1], torch.tensor(example[1:]))
            assert float(loss_packed) == pytest.approx(float(loss_alone), abs=1e-5)
            start += len(example)
    model.eval()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_last_hidden_state_is_after_the_final_norm_and_logits_to_keep(name: str) -> None:
    """tunelab's fused loss computes hidden_states[-1] @ lm_head.weight.T itself."""
    model = native_model(name)
    ids = torch.tensor([_reference(name)["input_ids"]])
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids, output_hidden_states=True, logits_to_keep=1)
    assert out.logits.shape == (1, 1, full.shape[-1])
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    last = out.hidden_states[-1]
    assert _max_diff(last @ model.lm_head.weight.T, full) < 1e-5
    assert _max_diff(out.logits[0, -1], full[0, -1]) < 1e-6
    with torch.no_grad():
        # the first entry is the embeddings
        assert _max_diff(model.model.norm(out.hidden_states[0]), last) > 1e-2


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_loss_goes_through_loss_function_with_num_items_in_batch(name: str) -> None:
    model = native_model(name)
    ids = torch.tensor([_reference(name)["input_ids"]])
    with torch.no_grad():
        mean = model(ids, labels=ids).loss
        summed = model(ids, labels=ids, num_items_in_batch=torch.tensor(13)).loss
    assert float(summed) == pytest.approx(float(mean) * (ids.shape[1] - 1) / 13, rel=1e-5)


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_gradient_checkpointing_gives_the_same_gradients(name: str) -> None:
    model = native_model(name)
    ids = torch.tensor([_reference(name)["input_ids"][:24]])

    calls = []
    mlp = model.model.layers[0].mlp
    forward = mlp.forward

    def counting(*args, **kwargs):  # module hooks do not fire in the recompute, a wrapped forward does
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counting

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.train()
        calls.clear()
        model(ids, labels=ids, use_cache=False).loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    try:
        plain, plain_calls = grads(), len(calls)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        checkpointed, checkpointed_calls = grads(), len(calls)
    finally:
        del mlp.forward
        model.gradient_checkpointing_disable()
        model.zero_grad()
        model.eval()
    assert (plain_calls, checkpointed_calls) == (1, 2)  # the backward recomputed the layer
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for key in plain:
        assert torch.allclose(plain[key], checkpointed[key], atol=1e-6), key


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_generate_with_a_kv_cache_equals_without_and_the_original(name: str) -> None:
    ref = _reference(name)
    model = native_model(name)
    prompt = torch.tensor([ref["input_ids"][:12]])
    kwargs = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    cached = model.generate(prompt, use_cache=True, **kwargs)[0, 12:].tolist()
    uncached = model.generate(prompt, use_cache=False, **kwargs)[0, 12:].tolist()
    assert cached == uncached == ref["greedy_ids"] == ref["greedy_ids_no_cache"]


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_left_padded_batch_generation_equals_each_prompt_alone(name: str) -> None:
    model = native_model(name)
    ids = _reference(name)["input_ids"]
    short, long = ids[20:27], ids[:12]
    batch = torch.tensor([[0] * 5 + short, long])
    mask = torch.tensor([[0] * 5 + [1] * 7, [1] * 12])
    kwargs = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    out = model.generate(batch, attention_mask=mask, **kwargs)[:, 12:].tolist()
    assert out[0] == model.generate(torch.tensor([short]), **kwargs)[0, 7:].tolist()
    assert out[1] == model.generate(torch.tensor([long]), **kwargs)[0, 12:].tolist()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_sdpa_and_eager_agree(name: str) -> None:
    ids = _reference(name)["input_ids"]
    batch = torch.tensor([ids, [0] * 5 + ids[5:]])
    mask = torch.tensor([[1] * 40, [0] * 5 + [1] * 35])
    with torch.no_grad():
        sdpa = native_model(name, "sdpa")(batch, attention_mask=mask).logits
        eager = native_model(name, "eager")(batch, attention_mask=mask).logits
    assert native_model(name, "eager").config._attn_implementation == "eager"
    assert _max_diff(sdpa[0], eager[0]) < 1e-5 and _max_diff(sdpa[1, 5:], eager[1, 5:]) < 1e-5


# ---------------------------------------------------------------- 3. tokenizer


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_tokenizer_ids_equal_the_original_on_every_probe(name: str) -> None:
    """probes.json texts, special-token texts inside text, whitespace runs, 300 seeded texts of random
    vocabulary pieces, and each of the 1086 user-defined pieces alone."""
    ref, tok = _reference(name), tokenizer(name)
    assert not ref["token_ids_no_special_differ"]
    cases = {**ref["token_ids"], **ref["stress_ids"], **ref["user_defined_ids"]}
    assert set(PROBES["texts"]) <= set(ref["token_ids"]) and len(cases) > 1300
    wrong = {text: (ids, tok.encode(text)) for text, ids in cases.items() if tok.encode(text) != ids}
    assert not wrong
    for text, ids in ref["token_ids_no_special"].items():
        assert tok.encode(text, add_special_tokens=False) == ids


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_special_tokens_map_to_their_original_ids(name: str) -> None:
    ref, tok = _reference(name), tokenizer(name)
    assert ref["special_tokens"] == {
        "<unk>": 0,
        "<s>": 1,
        "</s>": 2,
        "<reserved_106>": 195,
        "<reserved_107>": 196,
    }
    for text, token_id in ref["special_tokens"].items():
        assert tok.convert_tokens_to_ids(text) == token_id
        assert tok.encode(text) == [token_id]
        assert tok.convert_ids_to_tokens(token_id) == text


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_tokenizer_sizes_and_special_ids_are_the_original_ones(name: str) -> None:
    facts, tok = _reference(name)["tokenizer_facts"], tokenizer(name)
    assert len(tok) == facts["len"] == facts["vocab_size"] == 125696
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (
        facts["bos_token_id"],
        facts["eos_token_id"],
        facts["pad_token_id"],
        facts["unk_token_id"],
    )
    assert tok.pad_token == facts["pad_token"] == "<unk>"
    assert set(tok.all_special_tokens) == set(facts["all_special_tokens"])
    # add_bos_token / add_eos_token: false
    assert tok.encode("hi") == tok.encode("hi", add_special_tokens=False)


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_decode_round_trips_and_equals_the_original_without_special_tokens(name: str) -> None:
    ref, tok = _reference(name), tokenizer(name)
    for text, ids in {**ref["token_ids"], **ref["stress_ids"]}.items():
        assert tok.decode(ids) == text
        if not any(s in text for s in ("<s>", "</s>", "<unk>")):
            assert ref["decoded"].get(text, text) == text


def test_decode_gives_the_text_where_the_original_inserts_a_space_before_special_tokens() -> None:
    """BaichuanTokenizer.convert_tokens_to_string writes " " + the text before each special token (a bug
    of its Llama-derived decoder): "a<s>b" -> " a<s>b" ... The fast tokenizer decodes to the text."""
    ref, tok = _reference("baichuan2_7b"), tokenizer("baichuan2_7b")
    text = "a<s>b</s>c<unk>d"
    assert ref["decoded"][text] == " a<s> b</s> c<unk>d"
    assert tok.decode(ref["token_ids"][text]) == text
    assert tok.decode(ref["token_ids"][text], skip_special_tokens=True) == "abcd"


def test_saved_tokenizer_reloads_with_the_same_ids(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    ref, tok = _reference("baichuan2_7b"), tokenizer("baichuan2_7b")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for text, ids in list(ref["token_ids"].items()) + list(ref["stress_ids"].items())[:50]:
        assert again.encode(text) == ids
    assert (len(again), again.pad_token_id, again.bos_token_id, again.eos_token_id) == (125696, 0, 1, 2)
    assert again.chat_template == baichuan2.CHAT_TEMPLATE


@pytest.mark.parametrize(
    ("settings", "bos", "eos"),
    [
        ({"add_bos_token": True}, True, False),
        ({}, True, False),
        ({"add_bos_token": False, "add_eos_token": True}, False, True),
    ],
)
def test_add_bos_and_eos_follow_tokenizer_config_with_the_original_defaults(
    tmp_path: Path, settings: dict, bos: bool, eos: bool
) -> None:
    """BaichuanTokenizer adds bos unless add_bos_token is false (its default is true), eos only if asked."""
    import shutil

    source = LEGACY / "baichuan2_7b"
    shutil.copy(source / "tokenizer.model", tmp_path / "tokenizer.model")
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("add_bos_token"), config.pop("add_eos_token")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, **settings}), encoding="utf-8")
    tok = baichuan2.build_tokenizer(tmp_path)
    text = PROBES["texts"][1]
    plain = _reference("baichuan2_7b")["token_ids"][text]
    assert tok.encode(text) == [1] * bos + plain + [2] * eos
    assert tok.encode(text, add_special_tokens=False) == plain


def test_tokenizer_refuses_a_sentencepiece_model_with_other_settings(tmp_path: Path) -> None:
    """The fast tokenizer reproduces Baichuan2's settings only (no dummy prefix, identity normaliser...)."""
    data = (LEGACY / "baichuan2_7b" / "tokenizer.model").read_bytes()
    spm = baichuan2.read_sentencepiece(LEGACY / "baichuan2_7b" / "tokenizer.model")
    assert spm["normalizer"]["add_dummy_prefix"] is False and spm["trainer"]["byte_fallback"] is True
    assert len(spm["pieces"]) == 125696 and spm["pieces"][195] == ("<reserved_106>", 0.0, 4)
    broken = dict(spm, normalizer={**spm["normalizer"], "add_dummy_prefix": True})
    with pytest.raises(ValueError, match="add_dummy_prefix"):
        baichuan2._check_spm_settings(broken)
    assert data  # the file itself is untouched


# ---------------------------------------------------------------- 4. chat ids


def _conversation():
    from tunelab.data.conversation import Message, Role

    system = PROBES["conversation"][0]["content"]
    messages = [Message(Role(m["role"]), m["content"]) for m in PROBES["conversation"][1:]]
    return system, messages


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_tunelab_baichuan2_template_gives_build_chat_input_ids(name: str) -> None:
    """system text first (as plain text), 195 + user, 196 + answer, no eos between turns, 196 to answer."""
    from tunelab.data.encode import encode_prompt
    from tunelab.data.templates import get_template

    ref, tok = _reference(name), tokenizer(name)
    system, messages = _conversation()
    assert encode_prompt(tok, get_template("baichuan2"), messages, system=system) == ref["chat_ids"]


def test_training_format_is_the_builder_ids_then_one_eos() -> None:
    """The same ids for an answered conversation; tunelab's template adds eos once after the last answer
    (efficient_eos: the builder, an inference helper, ends with the answer), and trains only the answer."""
    from tunelab.data.encode import encode_supervised
    from tunelab.data.templates import get_template

    ref, tok = _reference("baichuan2_7b"), tokenizer("baichuan2_7b")
    system, messages = _conversation()
    encoded = encode_supervised(tok, get_template("baichuan2"), messages[:2], system=system, cutoff_len=4096)
    assert encoded["input_ids"] == ref["chat_ids_answered"] + [2]
    answer_start = ref["chat_ids_answered"].index(196) + 1
    assert encoded["labels"] == [-100] * answer_start + ref["chat_ids_answered"][answer_start:] + [2]


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_tokenizer_chat_template_gives_build_chat_input_ids(name: str) -> None:
    ref, tok = _reference(name), tokenizer(name)
    conversation = PROBES["conversation"]
    prompt = tok.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    answered = tok.apply_chat_template(conversation[:3], tokenize=True, return_dict=False)
    assert list(prompt) == ref["chat_ids"]
    assert list(answered) == ref["chat_ids_answered"]


def test_reference_json_is_small_and_from_the_original_versions() -> None:
    for name in CHECKPOINTS:
        path = REFERENCE / f"{name}.json"
        assert path.stat().st_size < 1_000_000
        ref = _reference(name)
        assert ref["oracle_versions"] == {"tokenizer": "4.33.3", "model": "4.53.3"}
        assert math.isfinite(ref["loss"]) and len(ref["input_ids"]) == PROBES["seq_len"]
