"""An export folder is complete or absent: staging, manifest, one rename (issue #24, points 1, 2 and 5).

Readers (`--verify-only`, every model load) refuse a folder whose manifest does not match; a re-export
keeps the user's own files and drops the earlier export's; adapters, runs and foreign models are never
exported into; a full disk ends in one message with the earlier export intact.
"""

from __future__ import annotations

import errno
import json
import shutil

import pytest

from tunelab.errors import UserError
from tunelab.export import companions
from tunelab.export.run import ExportOptions, run_export
from tunelab.model.load import resolve_model_path
from tunelab.utils import publish

FAST = ExportOptions(verify=False, modelfile=True)


def _manifest(folder):
    return json.loads((folder / publish.MANIFEST_NAME).read_text())["files"]


def test_an_export_lists_every_file_it_wrote_with_size_and_hash(qwen_base, qwen_adapters, make_config, tmp_path):
    out = tmp_path / "merged"
    run_export(make_config(qwen_base, out, [qwen_adapters["lora"]]), FAST)
    files = _manifest(out)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {publish.MANIFEST_NAME}
    assert set(files) == on_disk and {"config.json", "model.safetensors", "tokenizer.json", "Modelfile"} <= on_disk
    assert files["model.safetensors"]["sha256"] == publish.sha256_of(out / "model.safetensors")
    assert not list(tmp_path.glob(".merged*"))  # no staging or replaced folder left behind
    assert publish.check_folder(out, "the export", hashes=True)


def test_a_reexport_keeps_the_users_files_and_drops_the_earlier_exports(qwen_base, qwen_adapters, make_config, tmp_path):
    out = tmp_path / "merged"
    run_export(make_config(qwen_base, out, [qwen_adapters["lora"]], export_size=0.01), FAST)  # several shards
    assert len(list(out.glob("model-*.safetensors"))) > 1
    (out / "model-f16.gguf").write_bytes(b"an old GGUF")  # as if an earlier export had written one
    manifest = json.loads((out / publish.MANIFEST_NAME).read_text())
    manifest["files"]["model-f16.gguf"] = {"size": 11, "sha256": publish.sha256_of(out / "model-f16.gguf")}
    (out / publish.MANIFEST_NAME).write_text(json.dumps(manifest))
    for name in ("README.md", "model_card.json", "model_eval_results.json"):
        (out / name).write_text(f"the user's {name}")
    run_export(make_config(qwen_base, out, [qwen_adapters["lora2"]]), FAST)  # one shard now
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "model_card.json", "model_eval_results.json"} <= names
    assert (out / "model_card.json").read_text() == "the user's model_card.json"
    assert "model-f16.gguf" not in names and not list(out.glob("model-*.safetensors"))
    assert (out / "model.safetensors").is_file() and publish.check_folder(out, "the export", hashes=True)


@pytest.mark.parametrize("occupant", ["adapter_config.json", "trainer_state.json", "checkpoint-10/"])
def test_an_adapter_or_a_run_folder_is_never_exported_into(qwen_base, qwen_adapters, make_config, tmp_path, occupant):
    out = tmp_path / "run"
    (out / occupant).parent.mkdir(parents=True, exist_ok=True)
    (out / occupant.rstrip("/")).mkdir() if occupant.endswith("/") else (out / occupant).write_text("{}")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(UserError, match="holds an adapter or a training run"):
        run_export(make_config(qwen_base, out, [qwen_adapters["lora"]]), FAST)
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_foreign_model_folder_is_refused_not_overwritten(qwen_base, qwen_adapters, make_config, tmp_path):
    out = tmp_path / "someone-elses"
    shutil.copytree(qwen_base, out)
    with pytest.raises(UserError, match="no tunelab export wrote.*does not delete files it did not write"):
        run_export(make_config(qwen_base, out, [qwen_adapters["lora"]]), FAST)
    assert (out / "config.json").read_bytes() == (qwen_base / "config.json").read_bytes()


def test_gguf_on_an_unsupported_architecture_is_refused_before_any_work(make_config, tmp_path):
    from tunelab.testing import build_tiny_model

    base = build_tiny_model(tmp_path / "qwen3", family="qwen3")
    with pytest.raises(UserError, match="architecture 'qwen3' is not supported.*nothing was written"):
        run_export(make_config(base, tmp_path / "out"), ExportOptions(gguf="f16"))
    assert not (tmp_path / "out").exists()


def test_a_full_disk_mid_export_is_one_message_and_the_earlier_export_stays(qwen_base, qwen_adapters, make_config,
                                                                           tmp_path, monkeypatch):
    out = tmp_path / "merged"
    run_export(make_config(qwen_base, out, [qwen_adapters["lora"]]), FAST)
    earlier = _manifest(out)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "tokenizer.json")

    monkeypatch.setattr(companions, "save_tokenizer", full)
    with pytest.raises(UserError, match="disk filled up while writing the export.*earlier export in .* is intact"):
        run_export(make_config(qwen_base, out, [qwen_adapters["lora2"]]), FAST)
    assert _manifest(out) == earlier and publish.check_folder(out, "the export", hashes=True)
    assert not list(tmp_path.glob(".merged*"))


def test_not_enough_free_space_is_refused_before_writing(qwen_base, qwen_adapters, make_config, tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(publish.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(UserError, match="needs about .* GB but the disk .* has 0.00 GB free.*Nothing was written"):
        run_export(make_config(qwen_base, tmp_path / "merged", [qwen_adapters["lora"]]), FAST)
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_readers_refuse_an_export_that_changed_after_it_was_written(qwen_base, qwen_adapters, make_config, tmp_path,
                                                                    damage):
    out = tmp_path / "merged"
    config = make_config(qwen_base, out, [qwen_adapters["lora"]])
    run_export(config, FAST)
    target = out / ("tokenizer.json" if damage == "delete" else "model.safetensors")
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        data[-64:] = bytes(b ^ 0xFF for b in data[-64:])
        target.write_bytes(bytes(data))
    with pytest.raises(UserError, match="incomplete or was changed after it was written"):
        run_export(config, ExportOptions(verify_only=True))
    if damage != "flip":  # loading checks sizes (cheap); hashes are checked by --verify-only
        with pytest.raises(UserError, match=f"{target.name} (is missing|has)"):
            resolve_model_path(str(out))


def test_a_shape_mismatched_adapter_is_refused_naming_both(qwen_base, make_config, tmp_path):
    from _exportkit import write_adapter

    from tunelab.testing import TinyModelSpec, build_tiny_model

    other = build_tiny_model(tmp_path / "wider", family="qwen2", spec=TinyModelSpec(hidden_size=48, intermediate_size=64))
    adapter = write_adapter(other, tmp_path / "wider-lora", seed=1)
    with pytest.raises(UserError, match=r"does not fit the base model .*'model.layers.0.mlp.down_proj' is \(32, 64\) in the base, but the adapter's lora_B.weight is \(48, 4\)"):
        run_export(make_config(qwen_base, tmp_path / "merged", [adapter]), FAST)
    assert not (tmp_path / "merged").exists()


def test_an_adapter_of_another_base_with_the_same_shapes_is_named(qwen_base, qwen_adapters, make_config, tmp_path,
                                                                  caplog):
    adapter = tmp_path / "lora"
    shutil.copytree(qwen_adapters["lora"], adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "someone/another-base"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    run_export(make_config(qwen_base, tmp_path / "merged", [adapter]), FAST)
    assert "was trained on 'someone/another-base'" in caplog.text and str(qwen_base) in caplog.text


def test_an_export_dir_that_is_a_file_is_refused_and_the_file_kept(qwen_base, qwen_adapters, make_config, tmp_path):
    """export_dir: /etc/passwd once replaced the file with the merged folder (kept aside as a dot file)."""
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0")
    with pytest.raises(UserError, match="export_dir: '.*passwd' is a file; choose a folder"):
        run_export(make_config(qwen_base, victim, [qwen_adapters["lora"]]), FAST)
    assert victim.read_text() == "root:x:0:0" and sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_publish_never_swaps_a_file_for_a_folder(tmp_path):
    staging = tmp_path / ".out.staging"
    staging.mkdir()
    (staging / "a.txt").write_text("new")
    publish.write_manifest(staging, "export")
    final = tmp_path / "out"
    final.write_text("the user's file")
    with pytest.raises(UserError, match="is a file, not a folder; nothing was replaced"):
        publish.publish(staging, final)
    assert final.read_text() == "the user's file" and (staging / "a.txt").is_file()
