"""The range table (config/ranges.py) and the parser's robustness against hostile config files."""

from __future__ import annotations

import json
import time
import types
import typing

import pytest

from tunelab.cli.main import main
from tunelab.config.groups import all_fields
from tunelab.config.ranges import INT_MAX, RANGES, capped_workers, cpu_count, range_problem

BASE = """\
stage: sft
do_train: true
model_name_or_path: /nonexistent/model
dataset: identity
dataset_dir: data
template: llama3
finetuning_type: lora
output_dir: out
report_to: none
"""


def _numeric(hint: object) -> bool:
    if hint in (int, float):
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_numeric(arg) for arg in typing.get_args(hint) if arg is not bool)
    return False


def test_every_numeric_field_of_every_group_has_a_range():
    numeric = {key for key, declarations in all_fields().items() if any(_numeric(d.hint) for d in declarations)}
    missing = sorted(numeric - set(RANGES))
    assert not missing, f"numeric keys without a row in config/ranges.py RANGES: {missing}"
    assert not sorted(set(RANGES) - numeric), "rows of RANGES that are no numeric key"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("learning_rate", 0.0, "learning_rate: 0.0 is out of range; it must be > 0 and <= 10 and finite (e.g. 1e-4)."),
    ("learning_rate", float("inf"), "learning_rate: inf is out of range; it must be > 0 and <= 10 and finite"),
    ("learning_rate", 1e308, "learning_rate: 1e+308 is out of range"),
    ("learning_rate", float("nan"), "learning_rate: nan is out of range"),
    ("gradient_accumulation_steps", 0,
     "gradient_accumulation_steps: 0 is out of range; it must be an integer >= 1 and <= 2147483647 (e.g. 8)."),
    ("gradient_accumulation_steps", -2, "gradient_accumulation_steps: -2 is out of range"),
    ("cutoff_len", 0, "cutoff_len: 0 is out of range; it must be an integer >= 1 and <= 2147483647 (e.g. 2048)."),
    ("seed", -1, "seed: -1 is out of range; it must be an integer >= 0 and <= 4294967295 (e.g. 42)."),
    ("seed", 2**32, "seed: 4294967296 is out of range"),
    ("max_samples", -3, "max_samples: -3 is out of range; it must be an integer >= 1"),
    ("max_steps", 0, "max_steps: 0 is out of range; it must be an integer >= 1 and <= 2147483647, or -1 (no limit: "
                     "num_train_epochs decides) (e.g. 1000)."),
    ("save_steps", -5.0, "save_steps: -5.0 is out of range; it must be > 0 and <= 2147483647 and finite (a "
                         "fraction below 1, a whole number from 1 on) (e.g. 500)."),
    ("logging_steps", 2.5, "logging_steps: 2.5 is out of range"),
    ("val_size", -0.1, "val_size: -0.1 is out of range; it must be >= 0"),
    ("lora_dropout", 1.0, "lora_dropout: 1.0 is out of range; it must be >= 0 and < 1 and finite (e.g. 0.05)."),
    ("top_p", 0.0, "top_p: 0.0 is out of range; it must be > 0 and <= 1 and finite (e.g. 0.7)."),
    ("freeze_trainable_layers", 0, "freeze_trainable_layers: 0 is out of range; it must be a nonzero integer"),
    ("dataloader_num_workers", -1, "dataloader_num_workers: -1 is out of range; it must be an integer >= 0"),
    ("lora_rank", 10**30, "lora_rank: 1000000000000000000000000000000 is out of range"),
    ("num_train_epochs", 0.0, "num_train_epochs: 0.0 is out of range; it must be > 0"),
    ("per_device_train_batch_size", 0, "per_device_train_batch_size: 0 is out of range"),
    ("pref_beta", 0.0, "pref_beta: 0.0 is out of range; it must be > 0 and <= 1000 and finite (e.g. 0.1)."),
])
def test_each_violation_is_one_message_naming_the_key_the_range_and_an_example(key, value, message):
    assert range_problem(key, value).startswith(message)


@pytest.mark.parametrize(("key", "value"), [
    ("learning_rate", 1e-4), ("max_steps", -1), ("max_steps", 10), ("local_rank", -1), ("pissa_iter", -1),
    ("freeze_trainable_layers", -2), ("logging_steps", 0.1), ("logging_steps", 10.0), ("val_size", 0.0),
    ("val_size", 100.0), ("seed", 0), ("warmup_steps", 0.0), ("lora_dropout", 0.0), ("temperature", 0.0),
    ("max_samples", None), ("cutoff_len", INT_MAX),
])
def test_values_in_range_and_special_values_pass(key, value):
    assert range_problem(key, value) is None


def test_worker_counts_above_the_cpus_are_capped_with_the_reason():
    cpus = cpu_count()
    capped = capped_workers({"dataloader_num_workers": 100000, "preprocessing_num_workers": 1})
    assert capped == {"dataloader_num_workers": (cpus, f"100000 asked, more than the {cpus} CPUs of this machine: "
                                                       "capped")}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"identity": {"file_name": "identity.json"}}))
    (tmp_path / "data" / "identity.json").write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"}]))
    return tmp_path


def _check(folder, content: bytes | str, capsys, *extra: str, name: str = "cfg.yaml", portable: bool = True):
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    code = main(["check", str(path), *extra, *(["--portable"] if portable else [])])
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def test_check_accepts_the_base_config(folder, capsys):
    assert _check(folder, BASE, capsys)[0] == 0


@pytest.mark.parametrize(("line", "message"), [
    ("gradient_accumulation_steps: 0", "gradient_accumulation_steps: 0 is out of range"),
    ("cutoff_len: 0", "cutoff_len: 0 is out of range"),
    ("seed: -1", "seed: -1 is out of range; it must be an integer >= 0"),
    ("learning_rate: 0", "learning_rate: 0.0 is out of range; it must be > 0"),
    ("learning_rate: 1e308", "learning_rate: 1e+308 is out of range"),
    ("learning_rate: .inf", "learning_rate: inf is out of range"),
    ("learning_rate: 1e5000", "learning_rate: inf is out of range"),
    ("max_samples: -3", "max_samples: -3 is out of range"),
    ("save_steps: -10", "save_steps: -10.0 is out of range"),
    ("logging_steps: -1", "logging_steps: -1.0 is out of range"),
    ("gradient_accumulation_steps: -4", "gradient_accumulation_steps: -4 is out of range"),
])
def test_check_refuses_an_out_of_range_value_with_one_message(folder, capsys, line, message):
    code, err, _ = _check(folder, BASE + line + "\n", capsys)
    assert code == 2
    assert err.strip() == f"tunelab check: error: {folder / 'cfg.yaml'}: {message}" or message in err
    assert err.count("out of range") == 1 and "Traceback" not in err


def test_a_value_on_the_command_line_is_checked_too(folder, capsys):
    code, err, _ = _check(folder, BASE, capsys, "gradient_accumulation_steps=0")
    assert code == 2 and "command line: gradient_accumulation_steps: 0 is out of range" in err


def test_train_refuses_out_of_range_values_before_anything_loads(folder, capsys):
    (folder / "cfg.yaml").write_text(BASE + "cutoff_len: 0\nlearning_rate: 0\n")
    assert main(["train", str(folder / "cfg.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cutoff_len: 0 is out of range" in err and "learning_rate: 0.0 is out of range" in err


def test_too_many_workers_are_capped_and_said(folder, capsys, caplog):
    code, _, out = _check(folder, BASE + "dataloader_num_workers: 100000\n", capsys)
    assert code == 0
    assert f"dataloader_num_workers: {cpu_count()}   # 100000 asked, more than the {cpu_count()} CPUs" in out


def test_a_file_that_is_not_utf8_names_the_file_and_the_byte(folder, capsys):
    code, err, _ = _check(folder, BASE.encode() + "default_system: café\n".encode("latin-1"), capsys)
    assert code == 2
    assert err.strip() == (f"tunelab check: error: {folder / 'cfg.yaml'}:10: not valid UTF-8: byte 0xe9 at offset "
                           f"{len(BASE) + len('default_system: caf')}; save the file as UTF-8 (most editors: "
                           "'Save with encoding').")


def test_a_utf8_byte_order_mark_is_fine(folder, capsys):
    assert _check(folder, b"\xef\xbb\xbf" + BASE.encode(), capsys)[0] == 0


def test_the_billion_laughs_document_ends_at_once_with_one_message(folder, capsys):
    lines = ['lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
    bomb = "\n".join(lines) + "\n"
    assert len(bomb) < 600
    started = time.perf_counter()
    code, err, out = _check(folder, BASE + bomb, capsys)
    assert time.perf_counter() - started < 1.0
    assert code == 2 and len(err) + len(out) < 2000
    assert "its YAML aliases (*name) expand to more than 100000 values (a 'billion laughs' document)" in err


def test_a_recursive_alias_is_refused(folder, capsys):
    code, err, _ = _check(folder, BASE + "lora_target: &x [a, *x]\n", capsys)
    assert code == 2 and "a recursive alias" in err


def test_an_ordinary_alias_still_works(folder, capsys):
    code, _, out = _check(folder, BASE + "lora_rank: &r 4\nlora_alpha: *r\n", capsys)
    assert code == 0 and " * lora_alpha: 4" in out


def test_a_huge_integer_literal_names_the_key(folder, capsys):
    code, err, _ = _check(folder, BASE + "cutoff_len: " + "9" * 5000 + "\n", capsys)
    assert code == 2 and "cutoff_len: a number of 5000 digits is out of range for every key." in err


def test_a_huge_integer_in_json_is_one_message(folder, capsys):
    code, err, _ = _check(folder, '{"cutoff_len": ' + "9" * 5000 + "}", capsys, name="cfg.json")
    assert code == 2 and "a number has more than 4300 digits" in err


def test_a_key_written_twice_uses_the_last_and_says_so(folder, capsys):
    code, err, out = _check(folder, BASE + "learning_rate: 1e-4\nlearning_rate: 2e-4\n", capsys)
    assert code == 0 and " * learning_rate: 0.0002" in out
    assert "'learning_rate' is set twice (lines 10 and 11); the last one is used" in err


def test_deep_nesting_and_control_characters_are_messages(folder, capsys):
    assert "nested too deeply" in _check(folder, BASE + "x: " + "[" * 3000 + "]" * 3000 + "\n", capsys)[1]
    code, err, _ = _check(folder, BASE + "default_system: a\x00b\n", capsys)
    assert code == 2 and "not valid YAML" in err


def test_a_second_config_file_is_still_refused(folder, capsys):
    code, err, _ = _check(folder, BASE, capsys, "other.yaml")
    assert code == 2 and "'other.yaml' looks like a second config file" in err


@pytest.mark.parametrize("reporter", ["wandb", "mlflow"])
def test_report_to_without_the_package_names_it_and_the_command(folder, capsys, reporter):
    from tunelab.optional_packages import install_command, is_installed

    if is_installed(reporter):
        pytest.skip(f"{reporter} is installed here")
    code, err, _ = _check(folder, BASE.replace("report_to: none", f"report_to: {reporter}"), capsys, portable=False)
    assert code == 2
    assert (f"report_to: {reporter} needs the package '{reporter}', which is not installed. Install it with: "
            f"{install_command(reporter)}") in err
