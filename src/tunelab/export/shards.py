"""Weights on disk: safetensors shards of at most `export_size` GB, or `.bin` with `export_legacy_format`.

`export_size` is in GB of 10^9 bytes (transformers' "5GB"). The limit holds for the *files*: the
tensor bytes given to `save_pretrained` leave room for each file's header, and every shard written
is measured afterwards. A single tensor larger than the limit cannot be split; it gets a shard of
its own and a warning names it (the anchor did this silently).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.export")

GB = 10**9
_HEADER_BASE = 4096  # file header and metadata of one shard
_HEADER_PER_TENSOR = 512  # one tensor's entry in a safetensors header or a pickle (.bin), name included


def shard_limit_bytes(export_size: float) -> int:
    """`export_size` GB as bytes; fractions are allowed (0.5 = 500 MB)."""
    try:
        size = float(export_size)
    except (TypeError, ValueError):
        raise UserError(f"export_size={export_size!r}: give the largest shard size in GB, e.g. 5 or 0.5.") from None
    if size <= 0:
        raise UserError(f"export_size={export_size}: the largest shard size must be positive (in GB).")
    return int(size * GB)


@dataclass(frozen=True)
class WrittenShards:
    """What was written: file name -> size in bytes, and the tensors too large for any shard."""

    files: dict[str, int]
    oversized: tuple[str, ...]
    index: str | None


def _budget(state: dict[str, Any], limit: int) -> int:
    longest = max((len(name) for name in state), default=0)
    per_tensor = _HEADER_PER_TENSOR + longest
    return max(limit - _HEADER_BASE - per_tensor * len(state), limit // 2)


def _save_state(model: Any) -> dict[str, Any]:
    return {name: tensor for name, tensor in model.state_dict().items()}


def save_weights(model: Any, out_dir: Path, export_size: float, legacy: bool = False) -> WrittenShards:
    """Write the weights (and config.json, generation_config.json) into `out_dir`; return the files."""
    limit = shard_limit_bytes(export_size)
    state = _save_state(model)
    budget = _budget(state, limit)
    largest = {name: t.numel() * t.element_size() for name, t in state.items()}
    oversized = tuple(sorted(name for name, size in largest.items() if size > budget))
    for name in oversized:
        logger.warning("tensor %s (%.2f GB) is larger than export_size=%s GB; it gets a shard of its own",
                       name, largest[name] / GB, export_size)
    model.save_pretrained(out_dir, max_shard_size=budget)
    if legacy:
        _to_legacy_bin(out_dir)
    return _measure(out_dir, limit, oversized, legacy)


def _weight_files(out_dir: Path, legacy: bool) -> list[Path]:
    suffix = ".bin" if legacy else ".safetensors"
    return sorted(p for p in out_dir.iterdir() if p.suffix == suffix and p.name.startswith(("model", "pytorch_model")))


def _measure(out_dir: Path, limit: int, oversized: tuple[str, ...], legacy: bool) -> WrittenShards:
    files = {p.name: p.stat().st_size for p in _weight_files(out_dir, legacy)}
    index_name = "pytorch_model.bin.index.json" if legacy else "model.safetensors.index.json"
    index = index_name if (out_dir / index_name).is_file() else None
    if index:
        weight_map: dict[str, str] = json.loads((out_dir / index).read_text())["weight_map"]
        holders_of_big = {weight_map[name] for name in oversized if name in weight_map}
    else:
        holders_of_big = set(files) if oversized else set()
    too_big = [f"{name} ({size / GB:.3f} GB)" for name, size in files.items() if size > limit and name not in holders_of_big]
    if too_big:  # a bug in the size accounting, never the user's fault: say so loudly
        raise RuntimeError(f"shards larger than export_size ({limit / GB} GB): {', '.join(too_big)}")
    logger.info("wrote %d weight file(s) of at most %.3f GB each: %s", len(files), max(files.values(), default=0) / GB,
                ", ".join(files))
    return WrittenShards(files=files, oversized=oversized, index=index)


def _legacy_name(name: str) -> str:
    return name.replace("model.safetensors", "pytorch_model.bin").replace("model-", "pytorch_model-").replace(
        ".safetensors", ".bin"
    )


def _to_legacy_bin(out_dir: Path) -> None:
    """Rewrite each safetensors shard as a torch pickle shard (what `export_legacy_format: true` asks)."""
    import torch
    from safetensors.torch import load_file

    for shard in sorted(out_dir.glob("model*.safetensors")):
        torch.save(load_file(str(shard)), out_dir / _legacy_name(shard.name))
        os.remove(shard)
    index = out_dir / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {k: _legacy_name(v) for k, v in data["weight_map"].items()}
        (out_dir / "pytorch_model.bin.index.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.remove(index)
