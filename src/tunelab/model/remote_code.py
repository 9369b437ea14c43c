"""What a user reads when a checkpoint's own Python code (trust_remote_code) fails under transformers 5.

Most remote code on the hub was written for transformers 4.x; on 5.x it fails deep inside itself
(`'property' object is not iterable`, `_pad() got an unexpected keyword argument 'padding_side'`), and
the raw traceback says nothing about what to do. The message names the file, line and call that
failed, the transformers version the code was written with (config.json's `transformers_version`),
and the options: a family tunelab loads natively, or that version of transformers outside tunelab.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

from tunelab.errors import UserError


def _remote_frame(error: BaseException, folder: Path | None) -> traceback.FrameSummary | None:
    """The innermost traceback frame in the checkpoint's own code (transformers copies it into its
    `transformers_modules` cache before importing it), or None when the failure is elsewhere."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if "transformers_modules" in path.parts or (folder is not None and path.parent == folder.resolve()):
            return frame
    return None


def _written_for(folder: Path | None) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8")) if folder else {}
    except (OSError, ValueError):
        return None
    version = config.get("transformers_version") if isinstance(config, dict) else None
    return str(version) if version else None


def remote_code_error(kind: str, name: str, error: BaseException) -> UserError | None:
    """The message for a failure inside the checkpoint's own `kind` code ("model" / "tokenizer"); None when
    the traceback never entered that code (then the caller's own handling applies)."""
    import transformers

    from tunelab.model.legacy import FAMILIES

    folder = Path(name).expanduser() if Path(name).expanduser().is_dir() else None
    frame = _remote_frame(error, folder)
    if frame is None:
        return None
    written = _written_for(folder)
    era = f"transformers {written}" if written else "an older transformers"
    native = ", ".join(family.display for family in FAMILIES) or "none yet"
    detail = str(error).splitlines()[0] if str(error) else ""
    return UserError(
        f"model_name_or_path '{name}': its own {kind} code (trust_remote_code) fails under transformers "
        f"{transformers.__version__}: {Path(frame.filename).name}, line {frame.lineno}, in {frame.name}: "
        f"{type(error).__name__}: {detail}. The code was written for {era}. Options: use a model family tunelab "
        f"loads natively without that code ({native}; docs/models.md), or run this model with the transformers "
        "version its code needs, outside tunelab (tunelab needs transformers 5)."
    )
