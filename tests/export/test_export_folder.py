"""The exported folder is a plain transformers model: shards within export_size, .bin on request,
the tokenizer with its original chat template, stop tokens in the generation config, value head, CLI."""

from __future__ import annotations

import json

import pytest
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunelab.cli.cmd_export import main as export_main
from tunelab.cli.cmd_export import split_options
from tunelab.errors import UserError
from tunelab.export.run import ExportOptions, run_export
from tunelab.export.shards import GB, shard_limit_bytes

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
]


def test_export_folder_loads_with_plain_transformers_and_keeps_the_chat_template(qwen_base, lora_export):
    out = lora_export.export_dir
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "qwen2" and not model.config.tie_word_embeddings
    exported, original = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(qwen_base)
    assert exported.chat_template == original.chat_template
    for conversation in CONVERSATIONS:
        for generation_prompt in (True, False):
            want = original.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
            assert exported.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt) == want
    assert exported("Hello world")["input_ids"] == original("Hello world")["input_ids"]
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 151645  # <|im_end|>
    assert (out / "Modelfile").read_text().startswith("# Ollama Modelfile written by tunelab from template 'qwen'\nFROM ./model-f16.gguf\n")


def test_generation_config_learns_the_templates_stop_tokens(qwen_base):
    """A base model's config that stops only at <|endoftext|> also stops at the template's <|im_end|>."""
    from transformers import GenerationConfig

    from tunelab.data.templates import get_template
    from tunelab.export.companions import add_stop_tokens

    class Model:
        generation_config = GenerationConfig(eos_token_id=151643)

    tokenizer = AutoTokenizer.from_pretrained(qwen_base)
    assert add_stop_tokens(Model, tokenizer, get_template("qwen")) == [151643, 151645]
    assert Model.generation_config.eos_token_id == [151643, 151645]


def test_tokenizer_without_chat_template_gets_the_named_one(llama_base, make_config, tmp_path):
    assert not AutoTokenizer.from_pretrained(llama_base).chat_template
    out = tmp_path / "merged"
    run_export(make_config(llama_base, out, template="deepseek3"), ExportOptions(verify=False))
    exported = AutoTokenizer.from_pretrained(out)
    text = exported.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>"
    assert "FROM .\n" in (out / "Modelfile").read_text()


def test_bf16_shards_respect_a_fractional_export_size(qwen_base, qwen_adapters, make_config, tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "merged"
    config = make_config(qwen_base, out, [qwen_adapters["lora"]], export_size=0.012, export_dtype="bfloat16")
    result = run_export(config, ExportOptions(modelfile=False))
    files = sorted(out.glob("model-*.safetensors"))
    assert len(files) >= 2 and result.shards is not None and not result.shards.oversized
    assert all(f.stat().st_size <= 12_000_000 for f in files)
    assert {t.dtype for f in files for t in load_file(str(f)).values()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert result.check is not None and result.check.passed and result.check.tolerance > 1e-3  # bf16 tolerance
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {f.name for f in files}
    assert len(index["weight_map"]) == 27  # embedding, head, final norm and 12 tensors in each of the 2 layers
    assert AutoModelForCausalLM.from_pretrained(out).lm_head.weight.shape == (151665, 32)


def test_legacy_format_writes_bin_shards_that_load(qwen_base, qwen_adapters, make_config, tmp_path):
    out = tmp_path / "merged"
    result = run_export(make_config(qwen_base, out, [qwen_adapters["lora"]], export_size=0.025, export_legacy_format=True),
                        ExportOptions(modelfile=False))
    bins = sorted(out.glob("pytorch_model-*.bin"))
    assert len(bins) >= 2 and not list(out.glob("*.safetensors"))
    assert all(f.stat().st_size <= 25_000_000 for f in bins)
    index = json.loads((out / "pytorch_model.bin.index.json").read_text())
    assert set(index["weight_map"].values()) == {f.name for f in bins}
    assert result.check is not None and result.check.passed  # the .bin export was reloaded and compared


def test_a_tensor_larger_than_export_size_gets_its_own_shard(qwen_base, make_config, tmp_path, caplog):
    out = tmp_path / "merged"
    result = run_export(make_config(qwen_base, out, export_size=0.01), ExportOptions(verify=False, modelfile=False))
    assert result.shards is not None and set(result.shards.oversized) == {"lm_head.weight", "model.embed_tokens.weight"}
    assert "larger than export_size=0.01 GB" in caplog.text
    small = [size for name, size in result.shards.files.items() if size < 10_000_000]
    assert small and all(size <= 0.01 * GB for size in small)


def test_export_size_units():
    assert shard_limit_bytes(5) == 5_000_000_000 and shard_limit_bytes(0.5) == 500_000_000
    with pytest.raises(UserError, match="must be positive"):
        shard_limit_bytes(0)


def test_value_head_is_copied_next_to_the_weights(qwen_base, qwen_adapters, make_config, tmp_path):
    import shutil

    import torch
    from safetensors.torch import save_file

    adapter = tmp_path / "rm-adapter"
    shutil.copytree(qwen_adapters["lora"], adapter)
    save_file({"summary.weight": torch.ones(1, 32), "summary.bias": torch.zeros(1)}, str(adapter / "value_head.safetensors"))
    out = tmp_path / "merged"
    result = run_export(make_config(qwen_base, out, [adapter]), ExportOptions(verify=False, modelfile=False))
    assert result.value_head == out / "value_head.safetensors"
    assert (out / "value_head.safetensors").read_bytes() == (adapter / "value_head.safetensors").read_bytes()


def test_cli_runs_the_seed_merge_config_and_dora_merges_exactly(qwen_base, qwen_adapters, tmp_path, capsys):
    """Seed 001's merge_telechat_lora_sft.yaml, pointed at the tiny model and a DoRA adapter."""
    import torch
    from _exportkit import exported_logits, probe_ids, reference_logits

    config = {
        "model_name_or_path": str(qwen_base), "adapter_name_or_path": str(qwen_adapters["dora"]), "template": "qwen",
        "finetuning_type": "lora", "export_dir": str(tmp_path / "models" / "merged"), "export_size": 2,
        "export_device": "cpu", "export_legacy_format": False,
    }
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(config))
    assert export_main([str(path)]) == 0
    printed = capsys.readouterr().out
    assert "export check PASSED" in printed and "model.safetensors" in printed and "Modelfile" in printed
    ids = probe_ids()
    reference = reference_logits(qwen_base, [qwen_adapters["dora"]], ids)
    assert (reference - reference_logits(qwen_base, [], ids)).abs().max() > 0.05  # DoRA changes the model
    assert torch.allclose(exported_logits(tmp_path / "models" / "merged", ids), reference, atol=1e-4)
    assert export_main([str(path), "--verify-only"]) == 0
    assert "export check PASSED" in capsys.readouterr().out


def test_cli_options_are_split_from_config_arguments():
    rest, options = split_options(["cfg.yaml", "--gguf", "f32", "--verify-only", "export_size=1", "--export_dir", "x"])
    assert rest == ["cfg.yaml", "export_size=1", "--export_dir", "x"]
    assert options == {"gguf": "f32", "verify_only": True}
    assert split_options(["--gguf", "--no-modelfile"])[1] == {"gguf": "f16", "no_modelfile": True}


def test_hub_push_offline_says_how_to_push_later(tmp_path, monkeypatch):
    from tunelab.export import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="offline.*hf upload me/model"):
        hub.push_folder(tmp_path, "me/model")

    class NoNetwork:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.HfApi", NoNetwork)
    with pytest.raises(UserError, match="push failed \\(ConnectionError: Failed to resolve"):
        hub.push_folder(tmp_path, "me/model")


def test_gptq_without_a_gpu_is_refused_before_loading(qwen_base, make_config, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = make_config(qwen_base, tmp_path / "q", export_quantization_bit=4, export_quantization_dataset="c4.jsonl")
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        run_export(config)
    assert not (tmp_path / "q").exists()
