"""Point 5 of issue 19 (the class of it): every optional package a config needs is reported by tunelab with a
real install command, before anything loads; the extras named anywhere exist in pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _seedkit import run

import tunelab.config.needed_packages as needed
from tunelab.config.parser import parse_config
from tunelab.errors import MissingPackageError
from tunelab.optional_packages import BY_NAME, EXTRAS, PACKAGES, install_command

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_registrys_extras_are_pyprojects():
    assert set(OPTIONAL) == EXTRAS
    for package in PACKAGES:
        if package.extra:
            assert package.pip in _names(OPTIONAL[package.extra]), (package.pip, package.extra)


def test_every_extra_named_in_docs_and_code_exists():
    texts = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "src").rglob("*.py"))]
    named = {(path.name, extra) for path in texts
             for extra in re.findall(r"tunelab\[([a-z0-9-]+)\]", path.read_text(encoding="utf-8"))}
    named |= {(path.name, extra) for path in sorted((REPO / "src").rglob("*.py"))
              for extra in re.findall(r"(?:require_package|MissingPackageError)\([^)]*extra=\"([a-z0-9-]+)\"",
                                      path.read_text(encoding="utf-8"))}
    assert named and all(extra in OPTIONAL for _, extra in named), sorted(e for e in named if e[1] not in OPTIONAL)


def test_install_command_comes_from_the_registry():
    assert install_command("deepspeed") == 'pip install "tunelab[deepspeed]"'
    assert install_command("bitsandbytes", extra="gpu") == 'pip install "tunelab[bitsandbytes]"'
    assert install_command("liger_kernel") == 'pip install "tunelab[liger]"'
    assert install_command("flash-attn") == "pip install flash-attn --no-build-isolation"
    assert install_command("wandb") == "pip install wandb"
    assert install_command("somepkg", extra="no-such-extra") == "pip install somepkg"
    assert str(MissingPackageError("vllm", "infer_backend: vllm", extra="gpu")) == (
        "infer_backend: vllm needs the package 'vllm', which is not installed. Install it with: "
        'pip install "tunelab[vllm]"')
    assert set(BY_NAME) >= {"deepspeed", "bitsandbytes", "liger-kernel", "liger_kernel", "vllm", "gptqmodel"}


@pytest.mark.parametrize(("argv", "message"), [
    (["--plot_loss", "true"], "plot_loss: true needs the package 'matplotlib', which is not installed. Install it "
                              'with: pip install "tunelab[metrics]"'),
    (["--report_to", "wandb"], "report_to: wandb needs the package 'wandb', which is not installed. Install it with: "
                               "pip install wandb"),
    (["--infer_backend", "vllm"], "infer_backend: vllm needs the package 'vllm', which is not installed. Install it "
                                  'with: pip install "tunelab[vllm]"'),
    (["--export_quantization_bit", "4", "--export_dir", "out"],
     "export_quantization_bit needs the package 'gptqmodel', which is not installed. Install it with: "
     'pip install "tunelab[gptq]"'),
])
def test_check_reports_a_missing_package(capsys, monkeypatch, tiny_qwen, argv, message):
    monkeypatch.setattr(needed, "is_installed", lambda package: False)
    result = run(capsys, "check", "--model_name_or_path", tiny_qwen, "--template", "qwen", *argv)
    assert result.code == 2
    assert message in result.error


def test_gpu_packages_are_reported_on_a_cuda_machine(capsys, monkeypatch, tiny_qwen):
    """With CUDA, a QLoRA / liger / fa2 config without its package is one list; without CUDA the device is."""
    monkeypatch.setattr(needed, "is_installed", lambda package: False)
    monkeypatch.setattr(needed, "cuda_available", lambda: True)
    config = parse_config(["--quantization_bit", "4", "--enable_liger_kernel", "true", "--flash_attn", "fa2",
                           "--optim", "adamw_bnb_8bit"])
    packages = needed.needed_packages(config)
    assert packages == [("bitsandbytes", "quantization_bit: 4 (QLoRA)"), ("bitsandbytes", "optim: adamw_bnb_8bit"),
                        ("liger-kernel", "enable_liger_kernel: true"), ("flash-attn", "flash_attn: fa2")]
