"""Kill -9 at every moment of writing and publishing an export: the folder is complete or refused (issue #24).

A fault injector (an audit hook counting every file-system write event: open for writing, rename,
remove, mkdir, rmtree) kills a forked child with SIGKILL at the k-th event, for every k from the first
write of the staging folder to the last step of publishing over an earlier export, and the parent then
checks what every reader would see: `export_dir` is either the earlier export or the new one, complete
(its manifest matches, hashes included), never a mix; after `recover` (what the next export or load
does first) the user's own files are all there. The same is done twice with a real `tunelab export`
process (kills inside the weights write and inside the publish).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.errors import UserError
from tunelab.utils import publish

WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"}


def _is_write(event: str, args: tuple) -> bool:
    if event in WRITE_EVENTS:
        return True
    if event == "open" and len(args) >= 2 and isinstance(args[1], str):
        return any(flag in args[1] for flag in "wax+")
    return False


def _export_files(folder: Path, tag: str) -> None:
    """What an export writes, in the order it writes it (weights, configs, tokenizer)."""
    (folder / "config.json").write_text(json.dumps({"tag": tag}))
    (folder / "model-00001-of-00002.safetensors").write_bytes(tag.encode() * 5000)
    (folder / "model-00002-of-00002.safetensors").write_bytes(tag.encode() * 3000)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {}, "tag": tag}))
    (folder / "tokenizer.json").write_text(json.dumps({"tag": tag}))


def _child(out: Path, kill_at: int) -> None:
    """Write a new export beside `out` and publish it; SIGKILL at write event `kill_at` (0: never)."""
    count = 0

    def hook(event: str, args: tuple) -> None:
        nonlocal count
        if kill_at and _is_write(event, args):
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    staging = publish.staging_for(out)
    _export_files(staging, "new")
    publish.write_manifest(staging, "export")
    publish.publish(staging, out)


def _count_events(out: Path) -> int:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # only file operations run in the child: no torch, so forking is safe
        count = 0

        def hook(event: str, args: tuple) -> None:
            nonlocal count
            if _is_write(event, args):
                count += 1

        sys.addaudithook(hook)
        staging = publish.staging_for(out)
        _export_files(staging, "new")
        publish.write_manifest(staging, "export")
        publish.publish(staging, out)
        os.write(write, str(count).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    return int(os.read(read, 64).decode())


def _earlier_export(out: Path) -> None:
    out.mkdir(parents=True)
    _export_files(out, "old")
    (out / "model-f16.gguf").write_bytes(b"old gguf")
    publish.write_manifest(out, "export")
    (out / "README.md").write_text("the user's notes")


def _tag(out: Path) -> str:
    return json.loads((out / "config.json").read_text())["tag"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_at_every_write_event_leaves_the_old_or_the_new_export_complete(tmp_path):
    total = _count_events(_prepared(tmp_path / "count"))
    assert total >= 20  # staging, five files, manifest, two renames, the user's file carried over, cleanup
    seen = {"old": 0, "new": 0, "missing": 0}
    for kill_at in range(1, total + 1):
        out = _prepared(tmp_path / f"k{kill_at}")
        pid = os.fork()
        if pid == 0:
            try:
                _child(out, kill_at)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, kill_at
        # what a reader sees right after the kill: a complete folder (old or new) or none at all
        if out.exists():
            assert publish.check_folder(out, "the export", hashes=True), kill_at
            assert set(publish.read_manifest(out).files) == {p.name for p in out.iterdir()} - {
                publish.MANIFEST_NAME, "README.md"}, kill_at
        # what the next export or load does first
        publish.recover(out)
        assert publish.check_folder(out, "the export", hashes=True), kill_at
        tag = _tag(out)
        seen[tag] += 1
        assert (out / "README.md").read_text() == "the user's notes", kill_at
        assert ((out / "model-f16.gguf").exists()) is (tag == "old"), kill_at  # never an old GGUF beside a new model
        assert not list(out.parent.glob(f".{out.name}.tunelab-*")), kill_at
    assert seen["old"] > 0 and seen["new"] > 0


def _prepared(out: Path) -> Path:
    _earlier_export(out)
    return out


def test_a_damaged_folder_is_refused_by_every_reader(tmp_path):
    out = _prepared(tmp_path / "merged")
    (out / "model-00002-of-00002.safetensors").write_bytes(b"cut")
    with pytest.raises(UserError, match="model-00002-of-00002.safetensors has 3 bytes"):
        publish.check_folder(out, "the export")
    from tunelab.model.load import resolve_model_path

    with pytest.raises(UserError, match="incomplete or was changed"):
        resolve_model_path(str(out))


_KILLER = """
import os, signal, sys
target = sys.argv[1]
def hook(event, args):
    if event == "os.rename" and target == "publish" and ".tunelab-staging" in str(args[0]):
        os.kill(os.getpid(), signal.SIGKILL)  # between moving the earlier export aside and the new one in
    if (event == "open" and target == "weights" and ".tunelab-staging" in str(args[0])
            and str(args[0]).endswith("generation_config.json") and "w" in str(args[1])):
        os.kill(os.getpid(), signal.SIGKILL)  # while save_pretrained writes the merged model (safetensors is Rust: no event)
sys.addaudithook(hook)
from tunelab.cli.main import main
sys.exit(main(["export", *sys.argv[2:]]))
"""


@pytest.mark.parametrize("moment", ["weights", "publish"])
def test_a_real_export_killed_mid_write_leaves_the_earlier_export(qwen_base, qwen_adapters, make_config, tmp_path, moment):
    from _exportkit import export_args

    from tunelab.export.run import ExportOptions, run_export

    out = tmp_path / "merged"
    run_export(make_config(qwen_base, out, [qwen_adapters["lora"]]), ExportOptions(verify=False, modelfile=False))
    earlier = publish.read_manifest(out)
    args = export_args(qwen_base, out, [qwen_adapters["lora2"]])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _KILLER, moment, *args, "--no-verify"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    publish.recover(out)
    assert publish.check_folder(out, "the export", hashes=True)
    assert publish.read_manifest(out) == earlier  # the earlier export, whole
