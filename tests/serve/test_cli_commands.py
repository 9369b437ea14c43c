"""`tunelab api` / `tunelab webchat` command modules: usage text, and errors before any loading."""

from __future__ import annotations

import logging
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


def test_api_refuses_a_busy_port_before_loading_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from _serve_fakes import free_port

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        monkeypatch.setenv("API_PORT", str(port))
        monkeypatch.delenv("API_HOST", raising=False)
        # the model folder does not exist: reaching the load would fail with another message
        with pytest.raises(UserError, match=f"API_PORT={port}: cannot listen on 127.0.0.1:{port}"):
            cmd_api.main(["model_name_or_path=/nonexistent", "template=qwen"])


def test_api_start_up_logs_inference_values_not_training_ones(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tunelab.config"):
        cmd_api._parse(["model_name_or_path=/nonexistent", "finetuning_type=lora"])
    logged = caplog.text
    assert "template = 'auto'" in logged  # inference reads it
    assert "lora_alpha" not in logged and "packing" not in logged and "padding_free" not in logged
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tunelab.config"):
        from tunelab.config.parser import parse_config

        parse_config(["model_name_or_path=/nonexistent", "finetuning_type=lora"])
    assert "lora_alpha" in caplog.text  # training commands still show it
