"""Issue 25, point 4: a model outside tunelab's native families whose own code fails under transformers 5
gets a message naming the file, line and call, the transformers it was written for, and the options;
`flash_attn: auto` falls back to eager for code that supports nothing else; a GPTQ checkpoint says what it
needs (export's reload with trust_remote_code: tests/export/test_remote_code_export.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from tunelab.config.model_args import ModelArguments
from tunelab.errors import UserError
from tunelab.model.folder import model_folder_problems
from tunelab.model.load import load_model, load_tokenizer
from tunelab.testing import TinyModelSpec, build_tiny_model

BROKEN_CONFIG = '''from transformers import PretrainedConfig


class BrokenConfig(PretrainedConfig):
    model_type = "broken"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.special = list(type(self).all_special_ids)  # a property in transformers 5, a list in 4.x
'''

EAGER_ONLY = '''from transformers import LlamaConfig, LlamaForCausalLM


class EagerConfig(LlamaConfig):
    model_type = "eager_llama"


class EagerForCausalLM(LlamaForCausalLM):
    config_class = EagerConfig
    _supports_sdpa = False
    _supports_flash_attn = False
'''


def _remote_folder(tmp_path: Path, name: str, code: str, config: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{config['auto_map']['AutoConfig'].split('.')[0]}.py").write_text(code.replace(
        "type(self).all_special_ids", "property(lambda s: [])"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_remote_code_that_fails_under_transformers_5_names_file_line_call_and_options(tmp_path):
    folder = _remote_folder(tmp_path, "broken", BROKEN_CONFIG, {
        "model_type": "broken", "transformers_version": "4.32.0",
        "auto_map": {"AutoConfig": "configuration_broken.BrokenConfig"}})
    with pytest.raises(UserError) as raised:
        load_model(ModelArguments(model_name_or_path=str(folder), trust_remote_code=True), None, dtype=torch.float32)
    message = raised.value.message
    assert message.startswith(f"model_name_or_path '{folder}': its own model code (trust_remote_code) fails under "
                              "transformers 5.")
    assert "configuration_broken.py, line 9, in __init__: TypeError: 'property' object is not iterable." in message
    assert "The code was written for transformers 4.32.0." in message
    assert "Options: use a model family tunelab loads natively without that code (" in message
    assert "docs/models.md" in message and "outside tunelab (tunelab needs transformers 5)" in message


def test_a_failure_outside_the_remote_code_keeps_its_own_message(tmp_path):
    with pytest.raises(UserError, match="is not an existing folder"):
        load_model(ModelArguments(model_name_or_path=str(tmp_path / "nope")), None, dtype=torch.float32)


def test_flash_attn_auto_falls_back_to_eager_for_code_without_sdpa(tmp_path, caplog):
    folder = build_tiny_model(tmp_path / "eager", family="llama", tokenizer="qwen2.5", spec=TinyModelSpec())
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="eager_llama", architectures=["EagerForCausalLM"],
                  auto_map={"AutoConfig": "modeling_eager.EagerConfig",
                            "AutoModelForCausalLM": "modeling_eager.EagerForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_eager.py").write_text(EAGER_ONLY)
    args = ModelArguments(model_name_or_path=str(folder), trust_remote_code=True, flash_attn="auto")
    caplog.set_level(logging.INFO, logger="tunelab.model")
    model = load_model(args, load_tokenizer(args), dtype=torch.float32)
    assert model.config._attn_implementation == "eager"
    assert "flash_attn = auto: the model does not support sdpa attention; using eager attention" in caplog.text
    with pytest.raises(UserError, match="does not support"):  # asked for explicitly: no silent change
        load_model(ModelArguments(model_name_or_path=str(folder), trust_remote_code=True, flash_attn="sdpa"),
                   load_tokenizer(args), dtype=torch.float32)


def test_a_gptq_checkpoint_says_it_needs_cuda_and_the_packages(tmp_path, monkeypatch):
    import tunelab.config.hardware as hardware

    folder = build_tiny_model(tmp_path / "int4", family="qwen2", spec=TinyModelSpec())
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr("tunelab.optional_packages.is_installed", lambda package: package != "gptqmodel")
    problems = model_folder_problems(ModelArguments(model_name_or_path=str(folder)))
    what = f"model_name_or_path: '{folder}' is a GPTQ-quantized checkpoint (4-bit, quantization_config in config.json)"
    assert problems == [
        f"{what}: its kernels need a CUDA GPU and none was found; on this machine use the unquantized model (e.g. "
        "Qwen-1_8B-Chat for Qwen-1_8B-Chat-Int4).",
        f"{what}: loading it needs gptqmodel; install them with pip install \"tunelab[gptq]\".",
    ]
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    monkeypatch.setattr("tunelab.optional_packages.is_installed", lambda package: True)
    assert model_folder_problems(ModelArguments(model_name_or_path=str(folder))) == []
