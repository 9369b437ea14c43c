"""DeepSpeed ZeRO-2 and ZeRO-3 runs of the 0.5B reference workload through `tunelab train` (issue 12).

    python benchmarks/zero_runs.py                        # builds the workload (shared/bench) in a temp folder
    python benchmarks/zero_runs.py --workload DIR         # a folder made by shared/bench/make_workload.py
    python benchmarks/zero_runs.py --stages 3 --nproc 2   # ZeRO-3 only, two GPUs

Each run is the real command a user types, `tunelab train ... deepspeed: examples/deepspeed/ds_z{2,3}_config.json`
with full fine-tuning in bf16, a few steps, in its own process (with --nproc > 1 the launcher starts
torchrun; with 1 it is FORCE_TORCHRUN=1 so DeepSpeed sees a launched process either way). After each
run the saved model is loaded back with `AutoModelForCausalLM.from_pretrained` (normal safetensors
layout, no DeepSpeed needed) and must give a finite loss on one batch. Prints one JSON summary (also
written to --json). Without a CUDA GPU, or without the deepspeed package, it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _workload import REPO, make_workload

CHECK = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
tok = AutoTokenizer.from_pretrained(path)
ids = tok("The market index rose as bond yields fell.", return_tensors="pt").input_ids.cuda()
with torch.no_grad():
    loss = model(input_ids=ids, labels=ids).loss.item()
params = sum(p.numel() for p in model.parameters())
print("RESULT " + json.dumps({"reload_loss": loss, "parameters": params, "finite": loss == loss and abs(loss) < 1e4}))
"""


def train_args(workload: Path, size: str, stage: int, out: Path, steps: int) -> list[str]:
    values: dict[str, object] = {
        "model_name_or_path": workload / f"model-{size}", "stage": "sft", "do_train": True, "finetuning_type": "full",
        "dataset": "bench_alpaca", "dataset_dir": workload / "data", "template": "qwen", "cutoff_len": 1024,
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "max_steps": steps, "learning_rate": 1e-5,
        "logging_steps": 1, "save_strategy": "no", "bf16": True, "report_to": "none", "output_dir": out,
        "overwrite_output_dir": True, "deepspeed": REPO / "examples" / "deepspeed" / f"ds_z{stage}_config.json",
    }  # fmt: skip
    return [f"--{k}={v}" for k, v in values.items()]


def run_stage(workload: Path, size: str, stage: int, out: Path, steps: int, nproc: int) -> dict[str, object]:
    env = dict(os.environ, FORCE_TORCHRUN="1")
    command = [sys.executable, "-m", "tunelab.cli.main", "train", *train_args(workload, size, stage, out, steps),
               f"--nproc_per_node={nproc}"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    result: dict[str, object] = {"zero_stage": stage, "exit_code": done.returncode,
                                 "seconds": round(time.perf_counter() - start, 1)}
    if done.returncode != 0:
        result["stderr_tail"] = done.stderr[-4000:]
        return result
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    result["losses"] = [r["loss"] for r in log if "loss" in r]
    result["saved_files"] = sorted(p.name for p in out.iterdir() if p.suffix in (".safetensors", ".json"))
    check = subprocess.run([sys.executable, "-c", CHECK, str(out)], capture_output=True, text=True)
    line = next((x for x in check.stdout.splitlines() if x.startswith("RESULT ")), None)
    result["reload"] = json.loads(line[7:]) if line else {"error": check.stderr[-2000:]}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", type=Path, help="folder made by make_workload.py (built if missing)")
    parser.add_argument("--size", default="0.5b")
    parser.add_argument("--stages", default="2,3", help="ZeRO stages to run, comma separated")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nproc", type=int, default=0, help="processes (GPUs); default: every visible GPU")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    options = parser.parse_args()

    import importlib.util

    import torch

    if not torch.cuda.is_available():
        print("zero_runs: no CUDA GPU here; DeepSpeed ZeRO runs need one. Skipped.")
        return 0
    if importlib.util.find_spec("deepspeed") is None:
        print('zero_runs: the deepspeed package is not installed (pip install "tunelab[deepspeed]"). Skipped.')
        return 0
    nproc = options.nproc or torch.cuda.device_count()
    summary: dict[str, object] = {"device": torch.cuda.get_device_name(0), "gpus": nproc, "size": options.size,
                                  "steps": options.steps, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        workload = options.workload or make_workload(Path(tmp) / "workload", options.size)
        for stage in (int(s) for s in options.stages.split(",")):
            result = run_stage(workload, options.size, stage, Path(tmp) / f"z{stage}", options.steps, nproc)
            summary["runs"].append(result)  # type: ignore[union-attr]
            print(json.dumps(result), flush=True)
    ok = all(r["exit_code"] == 0 and r.get("reload", {}).get("finite") for r in summary["runs"])  # type: ignore[union-attr]
    summary["ok"] = ok
    text = json.dumps(summary, indent=2)
    print(text)
    if options.json:
        options.json.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
