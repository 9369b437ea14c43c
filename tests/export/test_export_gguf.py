"""GGUF files read back with the `gguf` package: llama.cpp's tensor names, shapes, types and metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tunelab.errors import UserError
from tunelab.export.gguf_file import pre_tokenizer_name, write_gguf

gguf = pytest.importorskip("gguf")


def field(reader, key):
    value = reader.fields[key]
    if value.types and value.types[0] == gguf.GGUFValueType.ARRAY:
        return value
    part = value.parts[value.data[0]]
    return bytes(part).decode("utf-8") if value.types[0] == gguf.GGUFValueType.STRING else part.tolist()[0]


def expected_names(layers: int, with_output: bool, biases: bool) -> set[str]:
    per_layer = ["attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                 "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"]
    if biases:
        per_layer += ["attn_q.bias", "attn_k.bias", "attn_v.bias"]
    names = {f"blk.{i}.{n}" for i in range(layers) for n in per_layer} | {"token_embd.weight", "output_norm.weight"}
    return names | ({"output.weight"} if with_output else set())


def test_qwen2_gguf_reads_back(lora_export):
    out = lora_export.export_dir
    assert lora_export.gguf == out / "model-f16.gguf"
    reader = gguf.GGUFReader(lora_export.gguf)
    assert field(reader, "general.architecture") == "qwen2"
    assert field(reader, "qwen2.block_count") == 2 and field(reader, "qwen2.embedding_length") == 32
    assert field(reader, "qwen2.feed_forward_length") == 64 and field(reader, "qwen2.context_length") == 2048
    assert field(reader, "qwen2.attention.head_count") == 4 and field(reader, "qwen2.attention.head_count_kv") == 2
    assert field(reader, "qwen2.rope.freq_base") == pytest.approx(10000.0)  # config.json rope_parameters.rope_theta
    assert field(reader, "qwen2.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6)
    assert field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    assert field(reader, "tokenizer.ggml.model") == "gpt2" and field(reader, "tokenizer.ggml.pre") == "qwen2"
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 151665
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 150000
    assert field(reader, "tokenizer.ggml.eos_token_id") == 151645
    # qwen has no bos token: llama.cpp must add none (the key is written, not left to llama.cpp's guess)
    assert field(reader, "tokenizer.ggml.add_bos_token") is False and field(reader, "tokenizer.ggml.add_eos_token") is False
    assert "<|im_start|>" in field(reader, "tokenizer.chat_template")
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == expected_names(2, with_output=True, biases=True)
    weights = {}
    for file in out.glob("model*.safetensors"):
        weights.update(load_file(str(file)))
    q = tensors["blk.0.attn_q.weight"]
    assert q.tensor_type == gguf.GGMLQuantizationType.F16 and list(q.shape) == [32, 32]  # GGUF lists dims innermost first
    hf_q = weights["model.layers.0.self_attn.q_proj.weight"]
    assert np.allclose(np.asarray(q.data).reshape(32, 32), hf_q.numpy().astype(np.float16))  # qwen2: no permutation
    k = tensors["blk.1.attn_k.bias"]
    assert k.tensor_type == gguf.GGMLQuantizationType.F32 and list(k.shape) == [16]
    assert list(tensors["token_embd.weight"].shape) == [32, 151665]


def test_llama_gguf_permutes_q_and_k_and_ties_the_head(llama_base, tmp_path):
    path = write_gguf(llama_base, tmp_path / "model-f32.gguf", "f32")
    reader = gguf.GGUFReader(path)
    config = json.loads((llama_base / "config.json").read_text())
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.vocab_size") == config["vocab_size"]
    assert field(reader, "llama.rope.dimension_count") == 8
    assert field(reader, "general.file_type") == gguf.LlamaFileType.ALL_F32
    assert field(reader, "tokenizer.ggml.pre") == "deepseek-v3"
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == expected_names(2, with_output=False, biases=False)  # tied: llama.cpp reuses token_embd
    weights = load_file(str(llama_base / "model.safetensors"))
    hf_k = weights["model.layers.0.self_attn.k_proj.weight"].numpy()  # (2 kv heads * 8, 32)
    gguf_k = np.asarray(tensors["blk.0.attn_k.weight"].data).reshape(16, 32)
    # llama.cpp's layout: within each head, rows (0, 4, 1, 5, 2, 6, 3, 7) of HF's rotate-half layout
    order = [h * 8 + r for h in range(2) for pair in range(4) for r in (pair, pair + 4)]
    assert np.array_equal(gguf_k, hf_k[order])
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32


def test_unknown_architectures_and_pre_tokenizers_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma2"}))
    with pytest.raises(UserError, match="architecture 'gemma2' is not supported"):
        write_gguf(tmp_path, tmp_path / "x.gguf")
    with pytest.raises(UserError, match="not one llama.cpp knows"):
        pre_tokenizer_name({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}}})
    assert torch is not None


def test_llama_gguf_adds_bos_for_templates_that_start_with_it(llama_base, make_config, tmp_path):
    """deepseek3 starts every prompt with bos, the DeepSeek-V3 tokenizer adds none itself: the GGUF tells llama.cpp
    to add it and the Modelfile beside it leaves it out (Ollama's prompts equal the training ids, test_export_modelfile)."""
    from tunelab.export.run import ExportOptions, run_export

    tokenizer_bos = "<｜begin▁of▁sentence｜>"
    plain = gguf.GGUFReader(write_gguf(llama_base, tmp_path / "plain.gguf", "f32"))
    assert field(plain, "tokenizer.ggml.add_bos_token") is False  # no template: the tokenizer's own behaviour
    assert field(plain, "tokenizer.ggml.add_eos_token") is False
    out = tmp_path / "merged"
    result = run_export(make_config(llama_base, out, template="deepseek3"), ExportOptions(verify=False, gguf="f32"))
    reader = gguf.GGUFReader(result.gguf)
    assert field(reader, "tokenizer.ggml.add_bos_token") is True
    assert field(reader, "tokenizer.ggml.bos_token_id") == 0
    modelfile = result.modelfile.read_text(encoding="utf-8")
    assert "FROM ./model-f32.gguf" in modelfile and tokenizer_bos not in modelfile.split('TEMPLATE """')[1].split("<｜User｜>")[0]
    folder_only = run_export(make_config(llama_base, tmp_path / "no-gguf", template="deepseek3"), ExportOptions(verify=False))
    template_block = folder_only.modelfile.read_text(encoding="utf-8").split('TEMPLATE """')[1]
    assert template_block.split("{{ $first := true }}")[1].startswith(tokenizer_bos)  # FROM .: the template writes it
