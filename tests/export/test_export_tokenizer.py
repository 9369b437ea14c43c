"""The exported tokenizer: the base's files byte for byte when training did not change it, and a
`tokenizer_config.json` that transformers 4.x reads too when it did (issue 24 point 3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _exportkit import export_args
from transformers import AutoTokenizer

from tunelab.config.parser import parse_config
from tunelab.export.companions import make_readable_by_transformers4, readable_by_transformers4
from tunelab.export.run import ExportOptions, run_export
from tunelab.testing import build_tiny_model, fixture_tokenizer_path

QUICK = ExportOptions(verify=False, modelfile=False)
ROOT = Path(__file__).resolve().parents[2]
TF4_PYTHON = Path(os.environ.get("TUNELAB_TF4_PYTHON", ROOT / ".oracle" / "tf-4.57.1" / "bin" / "python"))


def _hub_like_base(root: Path, family: str, tokenizer: str) -> Path:
    """A tiny model whose tokenizer files are the original ones (as downloaded from the hub), not transformers 5's."""
    base = build_tiny_model(root / f"{family}-{tokenizer}", family=family)
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        (base / name).unlink(missing_ok=True)
    for file in fixture_tokenizer_path(tokenizer).iterdir():
        shutil.copyfile(file, base / file.name)
    return base


def _export(base: Path, out: Path, template: str, **extra: object) -> Path:
    run_export(parse_config(export_args(base, out, template=template, **extra)), QUICK)
    return out


def _same_bytes(base: Path, out: Path, name: str) -> bool:
    return (base / name).read_bytes() == (out / name).read_bytes()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """(base, export) pairs: hub-like qwen2 / deepseek-v3 bases, transformers-5-written ones, a changed tokenizer."""
    root = tmp_path_factory.mktemp("tokenizer-exports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_CACHE", str(root / "cache"))
        pairs = {}
        for key, family, tokenizer, template in (("qwen2", "qwen2", "qwen2.5", "qwen"),
                                                 ("deepseek", "llama", "deepseek-v3", "deepseek3")):
            base = _hub_like_base(root, family, tokenizer)
            pairs[key] = (base, _export(base, root / f"{key}-out", template))
        written = build_tiny_model(root / "written-by-5", family="llama")  # as conftest's llama_base
        pairs["written-by-5"] = (written, _export(written, root / "written-out", "deepseek3"))
        deepseek = pairs["deepseek"][0]
        pairs["changed"] = (deepseek, _export(deepseek, root / "changed-out", "deepseek3", new_special_tokens="<|tool|>"))
        from tunelab.model.builtin import materialize_builtin

        tiny = materialize_builtin("tunelab/tiny-chat")
        pairs["tiny-chat"] = (tiny, _export(tiny, root / "tiny-out", "chatml", model_name_or_path="tunelab/tiny-chat"))
        yield pairs


@pytest.mark.parametrize("key", ["qwen2", "deepseek"])
def test_an_unchanged_tokenizer_is_the_base_files_byte_for_byte(exports, key):
    base, out = exports[key]
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert _same_bytes(base, out, name), name
    if key == "qwen2":
        assert not (out / "chat_template.jinja").exists()  # its own template stays in tokenizer_config.json
        assert AutoTokenizer.from_pretrained(out).chat_template == AutoTokenizer.from_pretrained(base).chat_template
    else:  # no chat template of its own: the named template's jinja beside the unchanged files
        from tunelab.data.templates import get_template
        from tunelab.data.templates.saving import named_template_jinja

        assert (out / "chat_template.jinja").read_text(encoding="utf-8") == named_template_jinja(get_template("deepseek3"))
        assert AutoTokenizer.from_pretrained(out).chat_template == named_template_jinja(get_template("deepseek3"))


@pytest.mark.parametrize("key", ["written-by-5", "tiny-chat"])
def test_a_base_written_by_transformers5_keeps_its_tokenizer_and_gets_a_config_4x_reads(exports, key):
    base, out = exports[key]
    assert _same_bytes(base, out, "tokenizer.json")
    before = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
    after = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert not readable_by_transformers4(before) and readable_by_transformers4(after)
    assert after["tokenizer_class"] == "PreTrainedTokenizerFast"
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= {"tokenizer_class", "extra_special_tokens", "additional_special_tokens", "is_local", "local_files_only"}
    mine, theirs = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(out)
    assert mine("Hello world <|im_start|>")["input_ids"] == theirs("Hello world <|im_start|>")["input_ids"]
    assert set(mine.all_special_tokens) == set(theirs.all_special_tokens)


def test_a_changed_tokenizer_is_saved_in_a_form_transformers4_reads(exports):
    base, out = exports["changed"]
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # the base's class, not TokenizersBackend
    assert config["add_bos_token"] is False and config["add_eos_token"] is False  # as the base had them
    assert "extra_special_tokens" not in config and "<|tool|>" in config["additional_special_tokens"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == len(AutoTokenizer.from_pretrained(base)) + 1 and "<|tool|>" in tokenizer.all_special_tokens


def test_make_readable_by_transformers4_keeps_named_extra_tokens(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "TokenizersBackend", "extra_special_tokens": {"image_token": "<img>"}, "is_local": True}))
    (tmp_path / "tokenizer.json").write_text("{}")
    make_readable_by_transformers4(tmp_path, {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True})
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config == {"tokenizer_class": "LlamaTokenizer", "extra_special_tokens": {"image_token": "<img>"},
                      "add_bos_token": True}


_TF4_CHECK = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
messages = [{"role": "user", "content": "Hello world"}]
print(json.dumps({"version": __import__("transformers").__version__, "encode": tokenizer.encode("Hello world"),
                  "chat": tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)}))
"""


@pytest.mark.skipif(not TF4_PYTHON.is_file(), reason=f"no transformers 4.57 environment at {TF4_PYTHON}: "
                    "build it with `bash scripts/oracle/tf457_env.sh` (or set TUNELAB_TF4_PYTHON)")
@pytest.mark.parametrize("key", ["qwen2", "deepseek", "written-by-5", "changed", "tiny-chat"])
def test_transformers_457_loads_the_export_like_transformers5(exports, key):
    out = exports[key][1]
    done = subprocess.run([str(TF4_PYTHON), "-c", _TF4_CHECK, str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["version"].startswith("4.57")
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert got["encode"] == tokenizer.encode("Hello world")
    messages = [{"role": "user", "content": "Hello world"}]
    assert got["chat"] == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
