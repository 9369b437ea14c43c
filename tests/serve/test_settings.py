"""API_* and GRADIO_* environment variables: loopback defaults and clear errors."""

from __future__ import annotations

import pytest

from tunelab.errors import UserError
from tunelab.serve.settings import ServerSettings
from tunelab.serve.webchat import WebchatSettings


def test_api_defaults_bind_loopback() -> None:
    settings = ServerSettings.from_env({})
    assert (settings.host, settings.port, settings.api_key, settings.model_name) == ("127.0.0.1", 8000, None, None)
    # max_concurrent None: as many requests generate at once as the hf engine decodes together (API_MAX_BATCH)
    assert (settings.max_concurrent, settings.max_batch, settings.max_queue) == (None, 16, 64)


def test_slots_follow_the_batch_width_unless_set(make_chat_model) -> None:
    from tunelab.serve.app import create_app

    app = create_app(make_chat_model(), ServerSettings(max_batch=8))
    assert app.state.limiter.max_concurrent == 8
    app = create_app(make_chat_model(), ServerSettings(max_batch=8, max_concurrent=3))
    assert app.state.limiter.max_concurrent == 3


def test_api_env_values() -> None:
    env = {"API_HOST": "0.0.0.0", "API_PORT": "8123", "API_KEY": "k", "API_MODEL_NAME": "mine",
           "API_MAX_CONCURRENT": "4", "API_MAX_QUEUE": "0", "API_MAX_CHOICES": "8", "API_MAX_REQUEST_TOKENS": "4096",
           "API_MAX_BODY_BYTES": "65536", "API_MAX_BATCH": "4", "API_CORS_ORIGINS": "https://a.example, http://localhost:3000",
           "API_ALLOWED_HOSTS": "api.example.com,*.internal"}
    assert ServerSettings.from_env(env) == ServerSettings(
        "0.0.0.0", 8123, "k", "mine", 4, 0, max_choices=8, max_request_tokens=4096, max_body_bytes=65536, max_batch=4,
        cors_origins=("https://a.example", "http://localhost:3000"), allowed_hosts=("api.example.com", "*.internal"))


def test_allowed_hosts_follow_the_bind_address_unless_listed() -> None:
    """Loopback: only loopback names (DNS rebinding); beyond loopback clients use names the server cannot know."""
    assert ServerSettings.from_env({}).allowed_hosts == ("localhost", "127.0.0.1", "::1", "[::1]")
    assert ServerSettings.from_env({}).cors_origins == ()
    assert ServerSettings.from_env({"API_HOST": "0.0.0.0"}).allowed_hosts == ("*",)
    assert ServerSettings.from_env({"API_HOST": "0.0.0.0", "API_ALLOWED_HOSTS": "box.lan"}).allowed_hosts == ("box.lan",)


@pytest.mark.parametrize(("key", "value"), [("API_PORT", "eighty"), ("API_PORT", "70000"), ("API_MAX_CONCURRENT", "0"),
                                          ("API_MAX_BODY_BYTES", "10"), ("API_MAX_CHOICES", "0")])
def test_api_env_errors(key: str, value: str) -> None:
    with pytest.raises(UserError, match=key):
        ServerSettings.from_env({key: value})


def test_webchat_defaults_bind_loopback() -> None:
    assert WebchatSettings.from_env({}) == WebchatSettings("127.0.0.1", 7860, False)
    assert WebchatSettings.from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7000",
                                     "GRADIO_SHARE": "1"}) == WebchatSettings("0.0.0.0", 7000, True)
    with pytest.raises(UserError, match="GRADIO_SERVER_PORT"):
        WebchatSettings.from_env({"GRADIO_SERVER_PORT": "x"})
