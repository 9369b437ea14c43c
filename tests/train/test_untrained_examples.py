"""No silent zeros: an example with no trained token (its answer cut away by cutoff_len, a one-token text) is
left out of training with its file:row named, counted in the run summary, and never makes a batch whose
loss is logged as 0.0; a data set with no trained token at all is refused."""

from __future__ import annotations

import json
import logging

import pytest

from tunelab.cli.main import main
from tunelab.config.parser import parse_config
from tunelab.train.data_prep import SOURCE_KEY, TRAINED_KEY, drop_untrained
from tunelab.train.recipe import run_training


def test_drop_untrained_names_each_row_and_counts(caplog):
    from datasets import Dataset

    rows = Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5], [6]], "labels": [[-100, 2], [-100], [4, 5], [-100]],
                              SOURCE_KEY: ["a.json:1", "a.json:2", "a.json:3", "b.json:7"],
                              TRAINED_KEY: [1, 0, 1, 0]})
    with caplog.at_level(logging.WARNING, logger="tunelab.train"):
        kept, dropped = drop_untrained(rows, "train", "sft")
    assert dropped == 2 and kept[SOURCE_KEY] == ["a.json:1", "a.json:3"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert "train: 2 of 4 examples have no trained token" in message and "a.json:2, b.json:7." in message


def test_prompts_are_never_dropped_for_having_no_labels():
    from datasets import Dataset

    rows = Dataset.from_dict({"input_ids": [[1, 2]], "labels": [[]], SOURCE_KEY: ["p.json:1"], TRAINED_KEY: [None]})
    kept, dropped = drop_untrained(rows, "train", "grpo")
    assert dropped == 0 and len(kept) == 1


def _tool_call_data(tmp_path):
    """Two plain answers and two tool calls: at cutoff_len 19 a tool call's markup alone fills the budget."""
    call = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello there"}]},
            {"conversations": [{"from": "human", "value": "weather?"}, {"from": "function_call", "value": call}]},
            {"conversations": [{"from": "human", "value": "hey"}, {"from": "gpt", "value": "hi, how are you"}]},
            {"conversations": [{"from": "human", "value": "rain?"}, {"from": "function_call", "value": call}]}]
    (tmp_path / "calls.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"calls": {"file_name": "calls.json",
                                                                      "formatting": "sharegpt"}}))


def test_a_run_leaves_untrained_examples_out_names_them_and_counts_them(tiny_qwen, tmp_path, caplog):
    _tool_call_data(tmp_path)
    out = tmp_path / "out"
    args = [f"--{k}={v}" for k, v in {
        "model_name_or_path": tiny_qwen, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "calls",
        "dataset_dir": tmp_path, "cutoff_len": 19, "per_device_train_batch_size": 1, "max_steps": 4,
        "logging_steps": 1, "report_to": "none", "output_dir": out, "disable_shuffling": True,
    }.items()]
    with caplog.at_level(logging.WARNING, logger="tunelab.train"):
        run_training(parse_config(args))
    warning = next(r.getMessage() for r in caplog.records if "no trained token" in r.getMessage())
    assert "2 of 4 examples" in warning and "calls.json:2, " in warning and "calls.json:4." in warning
    assert json.loads((out / "train_results.json").read_text())["num_untrained_examples"] == 2
    logged = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in logged if "loss" in entry]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)  # batch size 1: an untrained row would log 0.0


def test_a_data_set_without_any_trained_token_is_refused(tiny_qwen, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["train", *[f"--{k}={v}" for k, v in {
        "model_name_or_path": tiny_qwen, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "identity",
        "max_samples": 4, "cutoff_len": 8, "max_steps": 1, "report_to": "none", "output_dir": out,
    }.items()]])
    assert code == 2
    err = capsys.readouterr().err
    assert "none of its 4 examples has a trained token under cutoff_len 8; raise cutoff_len" in err


@pytest.mark.parametrize("stage", ["dpo"])
def test_pairs_without_a_trained_answer_are_left_out(tiny_qwen, tmp_path, stage, capsys):
    """A pair whose chosen or rejected answer is cut away has no preference to learn: refused like the rest."""
    out = tmp_path / "out"
    code = main(["train", *[f"--{k}={v}" for k, v in {
        "model_name_or_path": tiny_qwen, "stage": stage, "do_train": True, "template": "qwen",
        "dataset": "dpo_en_demo", "max_samples": 3, "cutoff_len": 8, "max_steps": 1, "report_to": "none",
        "output_dir": out,
    }.items()]])
    assert code == 2
    assert "none of its 3 examples has a trained token under cutoff_len 8" in capsys.readouterr().err
