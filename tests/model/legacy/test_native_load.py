"""Every family through the path a user's run takes (issue 25): the checkpoint folder in its original layout ->
`resolve_model_path` (the cached native folder: config, tokenizer, converted weights on disk) ->
`AutoModelForCausalLM.from_pretrained` in float32, against what the family's own code computed in the oracle
(tests/fixtures/legacy_reference/<family>.json). The per-family tests check the conversion functions in memory;
this one also catches what only the files on disk can get wrong (a dtype a converted tensor is stored in, a
config key the native class reads from config.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tunelab.model.legacy import FAMILIES
from tunelab.testing import legacy_fixture_path

REFERENCES = Path(__file__).resolve().parents[2] / "fixtures" / "legacy_reference"


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_the_cached_native_folder_computes_what_the_original_code_computes(family, tmp_path, private_cache, caplog):
    import logging

    from transformers import AutoModelForCausalLM

    from tunelab.model.legacy import family_named
    from tunelab.model.load import resolve_model_path

    source = tmp_path / family
    shutil.copytree(legacy_fixture_path(family), source)
    with caplog.at_level(logging.INFO, logger="tunelab.model"):
        native = Path(resolve_model_path(str(source)))
    logged = [r.getMessage() for r in caplog.records]
    assert all(f"  {line}" in logged for line in family_named(family).conversion)  # what was converted, said once
    assert native.parent == private_cache / "native" and not list(native.glob("*.py")) or \
        all(p.name.endswith("_modeling.py") for p in native.glob("*.py"))
    reference = json.loads((REFERENCES / f"{family}.json").read_text(encoding="utf-8"))
    model = AutoModelForCausalLM.from_pretrained(native, dtype=torch.float32).eval()
    ids = torch.tensor([reference["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
        loss = float(model(input_ids=ids, labels=ids).loss)
    expected = torch.tensor(reference["logits"])  # train mode: Qwen-1 differs past seq_length in eval (docs)
    assert (logits[:, reference["columns"]] - expected).abs().max() < 1e-4
    assert (torch.logsumexp(logits, -1) - torch.tensor(reference["logsumexp"])).abs().max() < 1e-4
    assert loss == pytest.approx(reference["loss"], rel=1e-5)


@pytest.mark.parametrize("family", ["baichuan2_13b", "qwen"])
def test_check_names_a_wrong_lora_target_and_accepts_the_family_own_names(family, tmp_path, private_cache):
    """`tunelab check` builds the native architecture on the meta device, tunelab's own classes included."""
    from tunelab.config.finetuning_args import FinetuningArguments
    from tunelab.config.model_args import ModelArguments
    from tunelab.model.layer_check import lora_target_problems
    from tunelab.model.legacy import resolve_native

    source = tmp_path / family
    shutil.copytree(legacy_fixture_path(family), source)
    native = Path(resolve_native(str(source), weights=False))
    own = {"baichuan2_13b": "W_pack", "qwen": "c_attn"}[family]
    args = ModelArguments(model_name_or_path=str(source))
    assert lora_target_problems(args, FinetuningArguments(finetuning_type="lora", lora_target=own), native) == []
    problems = lora_target_problems(args, FinetuningArguments(finetuning_type="lora", lora_target=f"{own},qkv"),
                                    native)
    assert len(problems) == 1 and problems[0].startswith("lora_target: qkv is not a linear layer of this model")


def test_template_render_converts_the_tokenizer_and_reads_no_weights(tmp_path, private_cache, capsys):
    from tunelab.cli.main import main

    source = tmp_path / "chatglm3-6b"
    shutil.copytree(legacy_fixture_path("chatglm3"), source)
    assert main(["template", "render", "chatglm3", "--model_name_or_path", str(source), "--no_table"]) == 0
    assert "[gMASK]sop<|user|> \n What is the capital of France?<|assistant|>" in capsys.readouterr().out
    assert list((private_cache / "native").glob("chatglm3-*/tokenizer.json"))
    assert not list((private_cache / "native").rglob("*.safetensors"))
