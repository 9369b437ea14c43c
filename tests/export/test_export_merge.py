"""Merged weights equal base + adapter: LoRA and stacked adapters (DoRA: test_export_folder's CLI test), checked against peft's own
unmerged forward and, for LoRA, against W + (alpha/r) B A computed by hand."""

from __future__ import annotations

import json

import pytest
import torch
from _exportkit import exported_logits, probe_ids, reference_logits
from safetensors.torch import load_file

from tunelab.config.parser import parse_config
from tunelab.errors import UserError
from tunelab.export.run import ExportOptions, run_export

Q = "model.layers.0.self_attn.q_proj.weight"


def lora_delta(adapter, module: str) -> torch.Tensor:
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    prefix = f"base_model.model.{module}"
    a, b = weights[f"{prefix}.lora_A.weight"], weights[f"{prefix}.lora_B.weight"]
    return (config["lora_alpha"] / config["r"]) * (b @ a)


def merged_weights(folder) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("model*.safetensors")):
        out.update(load_file(str(file)))
    return out


def test_lora_merge_equals_base_plus_adapter(qwen_base, qwen_adapters, lora_export):
    out, result = lora_export.export_dir, lora_export
    base = load_file(str(qwen_base / "model.safetensors"))
    merged = merged_weights(out)
    expected = base[Q] + lora_delta(qwen_adapters["lora"], "model.layers.0.self_attn.q_proj")
    assert torch.allclose(merged[Q], expected, atol=1e-6)
    assert (merged[Q] - base[Q]).abs().max() > 1e-3  # the adapter really moved the weight
    untouched = "model.layers.1.mlp.up_proj.weight"
    assert torch.equal(merged[untouched], base[untouched])
    ids = probe_ids()
    assert torch.allclose(exported_logits(out, ids), reference_logits(qwen_base, [qwen_adapters["lora"]], ids), atol=1e-4)
    assert result.check is not None and result.check.passed and result.check.adapter_effect > 0.05
    assert result.check.max_error < 1e-4 and result.check.top1_agreement == 1.0


def test_stacked_adapters_merge_in_order(qwen_base, qwen_adapters, make_config, tmp_path):
    out = tmp_path / "merged"
    adapters = [qwen_adapters["lora"], qwen_adapters["lora2"]]
    run_export(make_config(qwen_base, out, adapters), ExportOptions(modelfile=False))
    base = load_file(str(qwen_base / "model.safetensors"))
    merged = merged_weights(out)
    module = "model.layers.0.self_attn.q_proj"
    expected = base[Q] + lora_delta(adapters[0], module) + lora_delta(adapters[1], module)
    assert torch.allclose(merged[Q], expected, atol=1e-6)
    up = "model.layers.1.mlp.up_proj"  # only the second adapter targets it
    assert torch.allclose(merged[f"{up}.weight"], base[f"{up}.weight"] + lora_delta(adapters[1], up), atol=1e-6)
    ids = probe_ids()
    assert torch.allclose(exported_logits(out, ids), reference_logits(qwen_base, adapters, ids), atol=1e-4)


def test_verify_only_catches_an_export_of_the_base_weights(qwen_base, qwen_adapters, make_config, tmp_path):
    """The anchor's bug: base weights exported as if merged. --verify-only must fail on them."""
    import shutil

    wrong = tmp_path / "wrong"
    shutil.copytree(qwen_base, wrong)  # the base model's own files, as if they were the merge
    config = make_config(qwen_base, wrong, [qwen_adapters["lora"]])
    with pytest.raises(UserError, match="(?s)FAILED.*not a correct merge"):
        run_export(config, ExportOptions(verify_only=True))


def test_refusals_name_the_reason(qwen_base, qwen_adapters, tmp_path):
    with pytest.raises(UserError, match="export_dir is not set"):
        run_export(parse_config([f"--model_name_or_path={qwen_base}"]))
    with pytest.raises(UserError, match="quantization_bit"):
        run_export(parse_config([f"--model_name_or_path={qwen_base}", f"--export_dir={tmp_path / 'x'}",
                                 "--quantization_bit=4"]))
    with pytest.raises(UserError, match="adapters cannot be merged into a quantized model"):
        parse_config([f"--model_name_or_path={qwen_base}", f"--adapter_name_or_path={qwen_adapters['lora']}",
                      "--finetuning_type=lora", f"--export_dir={tmp_path / 'x'}", "--quantization_bit=4"])
    with pytest.raises(UserError, match="holds no exported model"):
        run_export(parse_config([f"--model_name_or_path={qwen_base}", f"--export_dir={tmp_path / 'none'}"]),
                   ExportOptions(verify_only=True))
    assert not (tmp_path / "x").exists()
