"""The lm-evaluation-harness bridge: a clear message without `lm_eval`, the right call with it."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pytest

from tunelab.cli.cmd_eval import main, split_harness
from tunelab.errors import MissingPackageError, UserError
from tunelab.eval.harness import parse_tasks


def test_split_harness_takes_the_flag_out() -> None:
    assert split_harness(["cfg.yaml", "--harness", "arc_easy,hellaswag", "--n_shot", "0"]) == (
        ["cfg.yaml", "--n_shot", "0"], "arc_easy,hellaswag")
    assert split_harness(["--harness=piqa", "x=1"]) == (["x=1"], "piqa")
    assert split_harness(["x=1"]) == (["x=1"], None)
    with pytest.raises(UserError, match="--harness needs task names"):
        split_harness(["--harness"])
    assert parse_tasks(" arc_easy, ,hellaswag") == ["arc_easy", "hellaswag"]


def test_without_lm_eval_the_message_names_the_package(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))
    with pytest.raises(MissingPackageError, match=r"needs the package 'lm-eval'.*pip install \"tunelab\[eval-harness\]\""):
        main([f"model_name_or_path={tiny_model_dir}", "--harness", "arc_easy"])


def test_harness_gets_base_adapter_and_settings(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("lm_eval")
    fake.__spec__ = importlib.machinery.ModuleSpec("lm_eval", None)

    def simple_evaluate(**kwargs):
        calls.append(kwargs)
        return {"results": {"arc_easy": {"acc,none": 0.5}}, "versions": {"arc_easy": 1}, "samples": {"x": object()}}

    fake.simple_evaluate = simple_evaluate
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    monkeypatch.setitem(sys.modules, "lm_eval.utils", None)  # no make_table: JSON print fallback
    adapter = tmp_path / "run"
    adapter.mkdir()
    assert main([f"model_name_or_path={tiny_model_dir}", f"adapter_name_or_path={adapter}", "infer_dtype=bfloat16",
                 "n_shot=0", "batch_size=8", "seed=7", "--harness", "arc_easy"]) == 0
    (call,) = calls
    assert call["model"] == "hf" and call["tasks"] == ["arc_easy"]
    assert call["model_args"] == {"pretrained": str(tiny_model_dir), "trust_remote_code": False, "peft": str(adapter),
                                  "dtype": "bfloat16"}
    assert (call["num_fewshot"], call["batch_size"], call["random_seed"], call["fewshot_random_seed"]) == (0, 8, 7, 7)
    saved = json.loads((adapter / "harness_results.json").read_text(encoding="utf-8"))  # beside the run
    assert saved == {"results": {"arc_easy": {"acc,none": 0.5}}, "versions": {"arc_easy": 1}}


def test_harness_leaves_few_shot_to_the_task_unless_set(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    calls = []
    fake = types.ModuleType("lm_eval")
    fake.__spec__ = importlib.machinery.ModuleSpec("lm_eval", None)
    fake.simple_evaluate = lambda **kwargs: calls.append(kwargs) or {"results": {}}
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    monkeypatch.setitem(sys.modules, "lm_eval.utils", None)
    assert main([f"model_name_or_path={tiny_model_dir}", f"save_dir={tmp_path / 'h'}", "--harness", "piqa"]) == 0
    assert calls[0]["num_fewshot"] is None and "peft" not in calls[0]["model_args"]
    assert (tmp_path / "h" / "harness_results.json").is_file()
