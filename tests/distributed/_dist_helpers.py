"""Helpers for the distributed tests: run `tunelab train` (or a hand-run launcher) as real processes on
127.0.0.1 with the gloo backend, and read what they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

AUDIT_DIR = Path(__file__).resolve().parent / "audit"


def train_args(model: Path, out: Path, **extra: object) -> list[str]:
    """A full-weights SFT run on the bundled 16-example `identity` set, on CPU, 3 optimizer steps."""
    values: dict[str, object] = {
        "model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen", "dataset": "identity",
        "max_samples": 16, "cutoff_len": 64, "finetuning_type": "full", "learning_rate": 1e-3, "max_steps": 3,
        "logging_steps": 1, "save_steps": 2, "report_to": "none", "lr_scheduler_type": "constant", "seed": 0,
        "use_cpu": True, "plot_loss": True, "output_dir": out, "ddp_find_unused_parameters": False,
    }  # fmt: skip
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def run_env(tmp: Path, audit: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run: one thread per process, a private data cache, no inherited launcher
    variables; with `audit`, every process records the files it opens for writing under `audit`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK",
                        "NPROC_PER_NODE", "FORCE_TORCHRUN", "TORCHELASTIC_RUN_ID", "CUDA_VISIBLE_DEVICES")
           and not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", TUNELAB_CACHE=str(tmp / "cache"), CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    if audit is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(AUDIT_DIR), env.get("PYTHONPATH", "")) if p)
        env["TUNELAB_TEST_AUDIT_WATCH"] = str(audit)
        env["TUNELAB_TEST_AUDIT_OUT"] = str(tmp)
    env.update(extra)
    return env


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tunelab(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunelab.cli.main", *args]


def losses(out: Path) -> list[float]:
    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def writes_by_rank(tmp: Path) -> dict[int, list[str]]:
    """What the audit hook saw each rank open for writing (or rename into place)."""
    return {int(p.stem.removeprefix("writes-rank")): json.loads(p.read_text()) for p in tmp.glob("writes-rank*.json")}
