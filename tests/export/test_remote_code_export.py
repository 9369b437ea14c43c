"""Issue 25, point 4: export's verification reload honours trust_remote_code (a model with its own code
is written with that code, and reloading it needs the same permission the export was given)."""

from __future__ import annotations

import json
from pathlib import Path

from _exportkit import write_adapter

from tunelab.export.run import ExportOptions, run_export
from tunelab.testing import TinyModelSpec, build_tiny_model

EAGER_ONLY = '''from transformers import LlamaConfig, LlamaForCausalLM


class OwnConfig(LlamaConfig):
    model_type = "own_llama"


class OwnForCausalLM(LlamaForCausalLM):
    config_class = OwnConfig
'''


def test_a_remote_code_model_exports_and_verifies_with_trust_remote_code(tmp_path: Path, make_config):
    folder = build_tiny_model(tmp_path / "own", family="llama", tokenizer="qwen2.5", spec=TinyModelSpec())
    adapter = write_adapter(folder, tmp_path / "adapter", seed=1)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="own_llama", architectures=["OwnForCausalLM"],
                  auto_map={"AutoConfig": "modeling_own.OwnConfig", "AutoModelForCausalLM": "modeling_own.OwnForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_own.py").write_text(EAGER_ONLY)
    out = tmp_path / "merged"
    result = run_export(make_config(folder, out, [adapter], trust_remote_code="true"), ExportOptions(modelfile=False))
    assert result.check is not None and result.check.passed and result.check.adapter_effect > 0
    assert (out / "modeling_own.py").is_file()  # the code travels with the export
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"] == \
        "modeling_own.OwnForCausalLM"
