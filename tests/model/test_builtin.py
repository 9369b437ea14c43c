"""The built-in tiny model (`tunelab/tiny-chat`) is built with its own seed and leaves the caller's random
state alone (issue 24, point 6: the first run, which builds it after `set_seed`, trained a different model
than every later run with the same seed)."""

from __future__ import annotations

import torch

from tunelab.model.builtin import materialize_builtin


def test_building_the_model_leaves_the_global_random_state_alone(private_cache):
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    folder = materialize_builtin("tunelab/tiny-chat")  # built now: the cache is private to this test
    assert (folder / "model.safetensors").is_file()
    assert torch.equal(torch.rand(4), expected)


def test_the_weights_do_not_depend_on_the_caller_seed(private_cache, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    torch.manual_seed(1)
    first = load_file(str(materialize_builtin("tunelab/tiny-chat") / "model.safetensors"))
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "other-cache"))
    torch.manual_seed(2)
    second = load_file(str(materialize_builtin("tunelab/tiny-chat") / "model.safetensors"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
