"""The one publish rule for output folders: write aside, list every file in a manifest, rename into place.

A folder tunelab writes (an export; later checkpoints and final models) is built in a staging folder
next to its destination (same disk, so the rename is atomic), completed with `tunelab_manifest.json`
(every file with its size and sha256, written last), and only then renamed to its name. A folder is
complete iff its manifest is present and matches; readers call `check_folder` and refuse anything else
with one message. A kill at any moment leaves either the previous folder or the new one, never a mix:
the LLaMA-Factory failure where a killed re-export left weights of one model beside the tokenizer of
none, and `transformers` then loaded an *empty* tokenizer without a word.

Files in the destination that tunelab did not write (a README, a `model_card.json`) are carried over
to the new folder; files an earlier export wrote (listed in its manifest: stale shards, an old GGUF,
a Modelfile) are not. A destination with model files but no manifest is someone else's (or an export
from before manifests): it is refused rather than guessed at.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tunelab.errors import UserError

logger = logging.getLogger("tunelab")

MANIFEST_NAME = "tunelab_manifest.json"
_STAGING_SUFFIX = ".tunelab-staging"
_OLD_SUFFIX = ".tunelab-replaced"
_CHUNK = 1 << 20
# names a model folder holds: a folder with any of these and no manifest is not tunelab's to replace
MODEL_FILE_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "*.bin", "*.safetensors.index.json",
                       "*.bin.index.json", "tokenizer*", "special_tokens_map.json", "chat_template.jinja", "*.gguf",
                       "Modelfile", "value_head.*")


@dataclass(frozen=True)
class Manifest:
    """What a complete folder holds: relative path -> (size in bytes, sha256)."""

    kind: str
    files: dict[str, tuple[int, str]]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path, *, keep_nested_manifests: bool = False) -> list[Path]:
    """Every file under `folder` but its manifest (with `keep_nested_manifests`, subfolders' manifests are
    files like any other: a training run's checkpoints each carry their own)."""
    if keep_nested_manifests:
        return sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST_NAME)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(folder: Path, kind: str) -> Manifest:
    """List every file of `folder` with size and hash, and write the manifest last (atomically)."""
    files = {p.relative_to(folder).as_posix(): (p.stat().st_size, sha256_of(p)) for p in _files(folder)}
    temporary = folder / (MANIFEST_NAME + ".tmp")
    data = {"tunelab_manifest": 1, "kind": kind,
            "files": {name: {"size": size, "sha256": digest} for name, (size, digest) in files.items()}}
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / MANIFEST_NAME)
    return Manifest(kind, files)


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest; None when it has none. A manifest that does not parse is an incomplete folder."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {name: (int(entry["size"]), str(entry["sha256"])) for name, entry in data["files"].items()}
        return Manifest(str(data.get("kind", "")), files)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{folder}: its {MANIFEST_NAME} is damaged, so the folder cannot be trusted to be complete; "
                        "write it again (re-run the export or the training that made it).") from None


def folder_problems(folder: Path, *, hashes: bool = False) -> list[str]:
    """What is wrong with a folder that has a manifest: missing, resized or (with `hashes`) changed files."""
    manifest = read_manifest(folder)
    if manifest is None:
        return []
    problems = []
    for name, (size, digest) in manifest.files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, not {size}")
        elif hashes and sha256_of(path) != digest:
            problems.append(f"{name} differs from what was written (sha256)")
    return problems


def check_folder(folder: Path, what: str, *, hashes: bool = False) -> bool:
    """Refuse a tunelab folder that is not complete; True when it has a manifest that matches."""
    problems = folder_problems(folder, hashes=hashes)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UserError(f"{what} {folder} is incomplete or was changed after it was written ({listed}); write it "
                        "again rather than load it.")
    return (folder / MANIFEST_NAME).is_file()


def staging_path(final: Path) -> Path:
    """Where `final` is staged: beside it (same disk: the publishing rename is atomic); every rank agrees."""
    return final.parent / f".{final.name}{_STAGING_SUFFIX}"


def staging_for(final: Path) -> Path:
    """A fresh staging folder at `staging_path(final)`."""
    staging = staging_path(final)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def _matches(name: str, patterns: Iterable[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, pattern) for pattern in patterns)


def foreign_model_files(final: Path) -> list[str]:
    """Model files in a folder without a manifest: another tool's model, or an export from before manifests."""
    if not final.is_dir() or (final / MANIFEST_NAME).is_file():
        return []
    return sorted(p.name for p in final.iterdir() if p.is_file() and _matches(p.name, MODEL_FILE_PATTERNS))


def recover(final: Path, *, keep_nested_manifests: bool = False) -> None:
    """Finish what a killed publish left: bring back a replaced folder, drop a half-written staging one."""
    old = final.parent / f".{final.name}{_OLD_SUFFIX}"
    if old.is_dir():
        if final.is_dir() and check_folder(final, "the folder"):
            _carry_foreign(old, final, keep_nested_manifests=keep_nested_manifests)
            shutil.rmtree(old)
        elif not final.exists():
            os.replace(old, final)
            logger.warning("restored %s: an interrupted run had moved it aside", final)
    staging = staging_path(final)
    if staging.is_dir():
        logger.warning("removing %s, left half-written by an interrupted run", staging)
        shutil.rmtree(staging)


def _carry_foreign(old: Path, final: Path, *, keep_nested_manifests: bool = False) -> None:
    """Move the files of `old` that its manifest does not list (the user's own) into `final`."""
    manifest = read_manifest(old)
    ours = set(manifest.files) | {MANIFEST_NAME} if manifest else {MANIFEST_NAME}
    for path in _files(old, keep_nested_manifests=keep_nested_manifests):
        name = path.relative_to(old).as_posix()
        if name not in ours and not (final / name).exists():
            (final / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final / name)
    stale = sorted(ours - {MANIFEST_NAME} - {p.relative_to(final).as_posix() for p in _files(final)})
    if stale:
        logger.info("not carried over from the earlier folder (it wrote them, this one does not): %s", ", ".join(stale))


def publish(staging: Path, final: Path, *, keep_nested_manifests: bool = False) -> None:
    """Rename a complete staging folder (manifest written) to `final`, carrying over the user's files.

    `keep_nested_manifests` carries subfolders' manifests too (a training run's checkpoints)."""
    if not (staging / MANIFEST_NAME).is_file():
        raise RuntimeError(f"publish({staging}): write_manifest first")  # a programming error, not a user's
    if final.exists() and not final.is_dir():  # never swap a user's file for a folder (export_dir: /etc/passwd)
        raise UserError(f"{final} is a file, not a folder; nothing was replaced. Choose a folder for the output.")
    if not final.exists():
        os.replace(staging, final)
    else:
        old = final.parent / f".{final.name}{_OLD_SUFFIX}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)  # a kill from here on is finished by `recover`
        os.replace(staging, final)
        _carry_foreign(old, final, keep_nested_manifests=keep_nested_manifests)
        shutil.rmtree(old)
    fsync_dir(final.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: some file systems refuse to fsync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_disk_full(error: BaseException) -> bool:
    """A write failed for lack of space: OSError ENOSPC / EDQUOT, or a library's error that wraps it in text."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error).lower()
    return "no space left on device" in text or "disk quota exceeded" in text


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start writing `needed` bytes into `folder`'s disk when it does not have them (plus 5%)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed * 1.05:
        raise UserError(f"{what} needs about {needed / 1e9:.2f} GB but the disk of {folder} has {free / 1e9:.2f} GB "
                        "free; free some space or choose another folder. Nothing was written.")
