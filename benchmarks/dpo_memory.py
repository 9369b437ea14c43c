"""Peak GPU memory of DPO with LoRA: the adapter-disabled reference (no second model copy) against
a reference loaded as a second copy (`ref_model` = the same weights), on the reference workload's
0.5B shape (Qwen2-0.5B layout, 151,936-token vocabulary, bf16).

    python benchmarks/dpo_memory.py                       # builds the workload in a temp folder
    python benchmarks/dpo_memory.py --workload DIR        # a folder made by shared/bench/make_workload.py
    python benchmarks/dpo_memory.py --size tiny --cpu     # smoke test of the script itself (no memory figures)

Each variant trains in its own process (a clean CUDA allocator), a few steps on `bench_pref`, and
reports torch.cuda.max_memory_allocated / max_memory_reserved. The difference between the two is
what a second copy costs; the adapter path should not pay it. Without a CUDA GPU the script says
so and exits 0. Prints one JSON summary (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _workload import REPO, make_workload

CHILD = r"""
import json, sys, torch
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training
args = json.loads(sys.argv[1])
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
run = run_training(parse_config([f"--{k}={v}" for k, v in args.items()]))
params = sum(p.numel() * p.element_size() for p in run.model.parameters())
out = {"model_bytes": params, "train_loss": run.metrics.get("train_loss")}
if torch.cuda.is_available():
    out["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    out["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
print("RESULT " + json.dumps(out))
"""


def train_args(workload: Path, size: str, out: Path, steps: int, cpu: bool, **extra: object) -> dict[str, object]:
    args: dict[str, object] = {
        "model_name_or_path": workload / f"model-{size}", "stage": "dpo", "do_train": True, "finetuning_type": "lora",
        "lora_target": "all", "lora_rank": 16, "dataset": "bench_pref", "dataset_dir": workload / "data",
        "template": "qwen", "cutoff_len": 1024, "per_device_train_batch_size": 4, "max_steps": steps,
        "learning_rate": 5e-6, "logging_steps": 1, "save_strategy": "no", "report_to": "none", "output_dir": out,
        "overwrite_output_dir": True, "bf16": not cpu, "pref_beta": 0.1,
    }
    args.update(extra)
    return {k: str(v) for k, v in args.items()}


def run_variant(args: dict[str, object]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, cwd=REPO)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"variant failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", type=Path, help="folder made by make_workload.py (built if missing)")
    parser.add_argument("--size", default="0.5b")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cpu", action="store_true", help="run without a GPU (checks the script; no memory figures)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    options = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not options.cpu:
        print(json.dumps({"skipped": "no CUDA GPU: peak GPU memory cannot be measured here"}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        workload = options.workload or make_workload(Path(tmp) / "workload", options.size)
        model = workload / f"model-{options.size}"
        variants = {
            "lora_adapter_disabled_reference": {},
            "lora_second_copy_reference": {"ref_model": model},
            "lora_precomputed_reference": {"precompute_ref_log_probs": True},
        }
        results = {}
        for name, extra in variants.items():
            args = train_args(workload, options.size, Path(tmp) / name, options.steps, options.cpu, **extra)
            results[name] = run_variant(args)
            print(name, json.dumps(results[name]), flush=True)
    summary: dict[str, object] = {"size": options.size, "steps": options.steps, "results": results,
                                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    base, copy = results["lora_adapter_disabled_reference"], results["lora_second_copy_reference"]
    if "peak_allocated_gib" in base:
        summary["second_copy_costs_gib"] = round(copy["peak_allocated_gib"] - base["peak_allocated_gib"], 3)
        summary["model_gib"] = round(int(base["model_bytes"]) / 2**30, 3)
    print(json.dumps(summary, indent=1))
    if options.json:
        options.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
