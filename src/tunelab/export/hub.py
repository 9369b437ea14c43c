"""`export_hub_model_id`: push the exported folder to the Hugging Face Hub.

Offline (HF_HUB_OFFLINE, no network, no token) the push cannot happen; the export on disk is kept
and the error says how to push it later, instead of a connection traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tunelab.errors import UserError, require_package

logger = logging.getLogger("tunelab.export")

_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    return any(os.environ.get(name, "").lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _later(folder: Path, repo_id: str) -> str:
    return f"The export in {folder} is complete; push it later with: hf upload {repo_id} {folder} ."


def push_folder(folder: Path, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Create the (private) repository if needed and upload the folder; return the repository URL."""
    require_package("huggingface_hub", "export_hub_model_id", package="huggingface_hub")
    if hub_offline():
        raise UserError(f"export_hub_model_id={repo_id}: the hub is offline (HF_HUB_OFFLINE is set). {_later(folder, repo_id)}")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload model exported by tunelab")
    except OSError as error:  # requests' ConnectionError and hub errors derive from OSError
        raise UserError(f"export_hub_model_id={repo_id}: the push failed ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'no network?'}). {_later(folder, repo_id)}") from None
    logger.info("pushed %s to %s", folder, url)
    return str(url)
