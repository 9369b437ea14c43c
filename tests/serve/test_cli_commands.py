"""`tunelab api` / `tunelab webchat` command modules: usage text, and errors before any loading."""

from __future__ import annotations

from typing import Any

import pytest

from tunelab.cli import cmd_api, cmd_webchat
from tunelab.errors import UserError


@pytest.mark.parametrize(("module", "words"), [(cmd_api, ["API_PORT", "API_KEY", "127.0.0.1"]),
                                               (cmd_webchat, ["GRADIO_SERVER_PORT", "127.0.0.1:7860"])])
def test_help_and_missing_config(module: Any, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert module.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in words)
    assert module.main([]) == 2


def test_api_rejects_a_bad_port_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "80800")
    with pytest.raises(UserError, match="API_PORT=80800"):
        cmd_api.main(["model_name_or_path=/nonexistent"])


def test_api_unknown_key_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_PORT", raising=False)
    with pytest.raises(UserError, match="temprature"):
        cmd_api.main(["model_name_or_path=/nonexistent", "temprature=0.5"])
