"""When liger-kernel is used: on by default only where it can run, required when asked for."""

from __future__ import annotations

import logging

import pytest

from tunelab.errors import MissingPackageError
from tunelab.model.liger import resolve_liger


@pytest.mark.parametrize(("requested", "cuda", "installed", "expected"), [
    (None, True, True, True),  # the default on a CUDA GPU with the package
    (None, True, False, False),
    (None, False, True, False),  # Triton kernels: never on CPU
    (False, True, True, False),
    (True, True, True, True),
])
def test_resolution(requested, cuda, installed, expected):
    assert resolve_liger(requested, cuda_available=cuda, installed=installed) is expected


def test_asked_for_but_not_installed_names_the_package():
    with pytest.raises(MissingPackageError, match=r"enable_liger_kernel: true needs the package 'liger-kernel'.*tunelab\[liger\]"):
        resolve_liger(True, cuda_available=True, installed=False)


def test_asked_for_without_cuda_is_logged_not_silent(caplog):
    with caplog.at_level(logging.INFO, logger="tunelab"):
        assert resolve_liger(True, cuda_available=False, installed=True) is False
    assert "enable_liger_kernel: true has no effect without a CUDA GPU" in caplog.text


def test_default_without_package_on_gpu_says_how_to_get_it(caplog):
    with caplog.at_level(logging.INFO, logger="tunelab"):
        resolve_liger(None, cuda_available=True, installed=False)
    assert "pip install liger-kernel" in caplog.text
