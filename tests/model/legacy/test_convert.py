"""The load-time conversion cache (model/legacy/convert.py) and the one place a path becomes a native folder
(model/legacy/__init__.py), on a made-up family: a tiny Llama saved under other parameter names, with an
auto_map that names code the folder does not have (so nothing but the conversion can load it)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import tunelab.model.legacy as legacy
from tunelab.config.model_args import ModelArguments
from tunelab.model.legacy.convert import FAMILY_KEY, MARKER, native_folder
from tunelab.model.legacy.family import LegacyFamily
from tunelab.testing import TinyModelSpec, build_tiny_model, fixture_tokenizer_path


def _to_native(state, config):
    return {key.replace("backbone.", "model."): value for key, value in state.items()}


def _to_original(state, config):
    return {key.replace("model.", "backbone."): value for key, value in state.items()}


def _native_config(original):
    config = {key: value for key, value in original.items() if key not in ("auto_map", "model_type")}
    return {**config, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_tokenizer_path("qwen2.5"))


TOY = LegacyFamily(
    name="toy", display="Toy (a renamed Llama)", matches=lambda config: config.get("model_type") == "toyllama",
    native="transformers LlamaForCausalLM", native_config=_native_config, to_native=_to_native,
    to_original=_to_original, build_tokenizer=_tokenizer, lora_targets={"qkv": ("q_proj", "k_proj", "v_proj")},
)


@pytest.fixture
def toy_checkpoint(tmp_path: Path) -> Path:
    from safetensors.torch import load_file, save_file

    folder = build_tiny_model(tmp_path / "toy", family="llama", tokenizer="qwen2.5",
                              spec=TinyModelSpec(tie_word_embeddings=False))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="toyllama", auto_map={"AutoModelForCausalLM": "modeling_toy.ToyForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    state = load_file(str(folder / "model.safetensors"))
    save_file(_to_original(state, config), str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> Path:
    monkeypatch.setattr(legacy, "FAMILIES", (TOY,))
    return private_cache


def test_a_family_checkpoint_resolves_to_a_native_folder_that_plain_transformers_loads(toy_checkpoint, toy_registered,
                                                                                      caplog):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    caplog.set_level(logging.INFO, logger="tunelab.model")
    native = Path(legacy.resolve_native(str(toy_checkpoint)))
    assert native.parent == toy_registered / "native" and native.name.startswith("toy-")
    config = json.loads((native / "config.json").read_text())
    assert config["model_type"] == "llama" and config[FAMILY_KEY] == "toy" and "auto_map" not in config
    assert json.loads((native / MARKER).read_text())["weights"] is True
    model = AutoModelForCausalLM.from_pretrained(native)  # no trust_remote_code, no code files
    original = load_file(str(toy_checkpoint / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, original[name.replace("model.", "backbone.")]), name
    assert sum("converted" in r.getMessage() and "first use only" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    assert legacy.resolve_native(str(toy_checkpoint)) == str(native)  # cached: nothing converted again
    assert not any("converted" in r.getMessage() for r in caplog.records)


def test_check_converts_config_and_tokenizer_only_then_training_adds_the_weights(toy_checkpoint, toy_registered):
    native = Path(legacy.resolve_native(str(toy_checkpoint), weights=False))
    assert (native / "config.json").is_file() and (native / "tokenizer.json").is_file()
    assert not list(native.glob("*.safetensors"))
    assert json.loads((native / MARKER).read_text())["weights"] is False
    assert Path(legacy.resolve_native(str(toy_checkpoint))) == native
    assert (native / "model.safetensors").is_file() and json.loads((native / MARKER).read_text())["weights"] is True


def test_an_edited_checkpoint_is_converted_again(toy_checkpoint, toy_registered):
    first = legacy.resolve_native(str(toy_checkpoint))
    config = json.loads((toy_checkpoint / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (toy_checkpoint / "config.json").write_text(json.dumps(config))
    second = legacy.resolve_native(str(toy_checkpoint))
    assert second != first and json.loads((Path(second) / "config.json").read_text())["rms_norm_eps"] == 1e-5


def test_a_leftover_temporary_folder_of_an_interrupted_conversion_is_not_trusted(toy_checkpoint, toy_registered):
    out = native_folder(toy_checkpoint, TOY, toy_registered / "native", weights=False)
    (out / MARKER).unlink()  # as if the process died before publishing
    again = native_folder(toy_checkpoint, TOY, toy_registered / "native", weights=False)
    assert again == out and json.loads((out / MARKER).read_text())["family"] == "toy"


def test_other_folders_and_hub_ids_pass_through_unchanged(toy_registered, tmp_path):
    plain = build_tiny_model(tmp_path / "plain", family="llama")
    assert legacy.resolve_native(str(plain)) == str(plain)
    assert legacy.resolve_native("./not/there") == "./not/there"


def test_the_folder_check_asks_for_no_trust_remote_code(toy_checkpoint, toy_registered):
    from tunelab.model.folder import model_folder_problems

    assert model_folder_problems(ModelArguments(model_name_or_path=str(toy_checkpoint))) == []
    legacy_off = ModelArguments(model_name_or_path=str(toy_checkpoint))
    import tunelab.model.legacy as registry

    registry.FAMILIES = ()  # restored by monkeypatch at teardown
    assert "set trust_remote_code: true" in model_folder_problems(legacy_off)[0]


def test_lora_targets_by_the_family_own_names_are_mapped_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="tunelab.model")
    assert legacy.native_lora_targets(["qkv", "o_proj", "q_proj"], TOY) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert "lora_target: qkv (Toy (a renamed Llama)'s own name) is q_proj,k_proj,v_proj" in caplog.text
    assert legacy.native_lora_targets(["qkv"], None) == ["qkv"]


def test_the_loaded_model_knows_its_family_and_lora_maps_the_names(toy_checkpoint, toy_registered):
    from tunelab.config.finetuning_args import FinetuningArguments
    from tunelab.model.load import load_model, load_tokenizer, resolve_model_path
    from tunelab.model.tuning import lora_config

    args = ModelArguments(model_name_or_path=str(toy_checkpoint))
    path = resolve_model_path(args.model_name_or_path)
    model = load_model(args, load_tokenizer(args, path), dtype=torch.float32, model_path=path)
    assert legacy.family_of_model(model) is TOY
    config = lora_config(model, FinetuningArguments(finetuning_type="lora", lora_target="qkv,o_proj"))
    assert sorted(config.target_modules) == ["k_proj", "o_proj", "q_proj", "v_proj"]


def test_a_hub_id_of_a_family_downloads_one_copy_of_the_weights_and_check_none(toy_checkpoint, toy_registered,
                                                                                monkeypatch):
    """Online, a hub id of a family checkpoint is downloaded and converted like a folder: `check` fetches only
    the small files, a run one copy of the weights (safetensors over .bin when the repository has both)."""
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: str(toy_checkpoint / name))
    monkeypatch.setattr(huggingface_hub, "list_repo_files",
                        lambda repo: ["config.json", "model.safetensors", "pytorch_model.bin"])

    def snapshot(repo, **kwargs):
        calls.append(kwargs)
        return str(toy_checkpoint)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    native = legacy.resolve_native("org/toy-7b", weights=False)
    assert calls[-1] == {"allow_patterns": ["*.json", "*.model", "*.tiktoken", "*.txt"]}
    assert not list(Path(native).glob("*.safetensors"))
    assert Path(legacy.resolve_native("org/toy-7b")) == Path(native)
    assert "*.bin" in calls[-1]["ignore_patterns"] and "*.gguf" in calls[-1]["ignore_patterns"]
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: (_ for _ in ()).throw(OSError("offline")))
    assert legacy.resolve_native("org/other") == "org/other"  # unreachable: the normal loader explains it


def test_a_layout_the_converter_does_not_cover_is_one_message_naming_the_checkpoint(toy_checkpoint, toy_registered,
                                                                                  monkeypatch):
    from dataclasses import replace

    from tunelab.errors import UserError

    def refuse(original):
        raise ValueError("rotary_pct 0.5 has no exact Qwen2 equivalent")

    monkeypatch.setattr(legacy, "FAMILIES", (replace(TOY, native_config=refuse),))
    with pytest.raises(UserError) as raised:
        legacy.resolve_native(str(toy_checkpoint))
    assert raised.value.message == (
        f"model_name_or_path '{toy_checkpoint}' is a Toy (a renamed Llama) checkpoint that tunelab's native transformers "
        "LlamaForCausalLM does not reproduce exactly: rotary_pct 0.5 has no exact Qwen2 equivalent. docs/models.md "
        "lists what is covered; the checkpoint's own code needs the transformers 4.x it was written for.")


def test_a_large_checkpoint_is_written_as_shards_with_an_index_that_loads(toy_checkpoint, toy_registered,
                                                                         monkeypatch):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    import tunelab.model.legacy.convert as convert

    monkeypatch.setattr(convert, "SHARD_SIZE", "8MB")  # the toy's embedding and head are 19 MB each
    native = Path(legacy.resolve_native(str(toy_checkpoint)))
    shards = sorted(native.glob("model-*.safetensors"))
    index = json.loads((native / "model.safetensors.index.json").read_text())
    assert len(shards) >= 2 and set(index["weight_map"].values()) == {p.name for p in shards}
    assert not list(native.glob("*.tmp*"))
    model = AutoModelForCausalLM.from_pretrained(native)
    original = load_file(str(toy_checkpoint / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, original[name.replace("model.", "backbone.")]), name
