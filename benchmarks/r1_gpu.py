"""R1 (LoRA SFT, Qwen2-1.5B shape, cutoff 2048, batch 8) and R2 (full SFT, 0.5B shape) with tunelab,
then the anchor on the same workload on the same machine, one JSON line per run.

    # on the GPU machine, from the repo root, with shared/bench copied into the repo (../shared does
    # not travel) and the anchor's wheels in .whl (shared/bench/fetch_anchor_wheels.sh):
    python benchmarks/r1_gpu.py --bench shared-bench --out $OUT [--anchor] [--runs r1,r1_packing,r2]
    python benchmarks/r1_gpu.py --size tiny --cpu --steps 3     # smoke test of the script (no GPU figures)

tunelab runs R1 exactly as `reference_sft_lora.yaml` says (the anchor's keys, tunelab's defaults:
padding-free batches, fused loss, liger-kernel when installed, checkpointing by the memory rule).
Reported per run, from the training process itself: non-padding tokens/s (tokens seen / train
runtime), seconds per optimizer step, peak GPU memory allocated and reserved, and MFU: model FLOPs
per token (6 × parameters for full training; 4 × parameters + the adapter's 6 × its parameters for
LoRA, whose frozen weights need no weight gradients; plus causal attention 6 × layers × hidden ×
mean row length) × tokens/s over the GPU's dense bf16 peak (`--peak-tflops`, 989 for an H100 SXM).
With `--anchor`, `shared/bench/anchor_gpu.sh` runs right after, in the same sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _workload import REPO, make_workload, shared_bench

CHILD = r"""
import json, sys, time, torch
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training
args = json.loads(sys.argv[1])
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
run = run_training(parse_config([args.pop("config"), *(f"--{k}={v}" for k, v in args.items())]))
m = run.metrics
model = run.model
total = sum(p.numel() for p in model.parameters())
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
cfg = getattr(model, "config", None)
out = {"tokens": m.get("num_input_tokens_seen"), "train_runtime": m.get("train_runtime"),
       "train_loss": m.get("train_loss"), "params": total, "trainable": trainable,
       "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
       "steps": json.load(open(args["output_dir"] + "/trainer_state.json"))["global_step"]}
if torch.cuda.is_available():
    out["peak_alloc_gib"] = torch.cuda.max_memory_allocated() / 2**30
    out["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    out["device"] = torch.cuda.get_device_name(0)
print("RESULT " + json.dumps(out), flush=True)
"""

RUNS = {  # name: (model size, yaml changes on top of R1)
    "r1": ("1.5b", {}),
    "r1_packing": ("1.5b", {"packing": True}),
    "r1_no_checkpointing": ("1.5b", {"activation_checkpointing": False}),
    "r2": ("0.5b", {"finetuning_type": "full"}),
}


def r1_yaml(bench: Path, workload: Path, size: str, out: Path) -> str:
    text = (bench / "reference_sft_lora.yaml").read_text()
    return text.replace("WORKLOAD/model-1.5b", str(workload / f"model-{size}")).replace(
        "WORKLOAD", str(workload)).replace("OUTDIR", str(out))


def mfu(result: dict, peak_tflops: float, full: bool) -> float | None:
    if not result.get("tokens") or not result.get("train_runtime"):
        return None
    params, trainable = result["params"], result["trainable"]
    per_token = 6 * params if full else 4 * (params - trainable) + 6 * trainable
    mean_row = 2048 / 2  # causal attention over rows of up to cutoff_len: a conservative mean
    per_token += 6 * result["layers"] * result["hidden"] * mean_row
    return per_token * result["tokens"] / result["train_runtime"] / (peak_tflops * 1e12)


def run_tunelab(name: str, bench: Path, workload: Path, work: Path, steps: int | None, cpu: bool) -> dict:
    size, changes = RUNS[name]
    out = work / name
    cfg = work / f"{name}.yaml"
    cfg.write_text(r1_yaml(bench, workload, size, out))
    args = {"config": str(cfg), "output_dir": str(out), **{k: v for k, v in changes.items()}}
    if steps:
        args["max_steps"] = steps
    if cpu:
        args.update({"bf16": False, "cutoff_len": 256, "max_samples": 64})
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, cwd=REPO)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"run": name, "error": done.stderr[-3000:]}
    result = {"run": name, "tool": "tunelab", **json.loads(line[len("RESULT "):])}
    if result.get("tokens") and result.get("train_runtime"):
        result["tok_per_s"] = result["tokens"] / result["train_runtime"]
        result["s_per_step"] = result["train_runtime"] / max(result["steps"], 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", help="folder holding make_workload.py and reference_sft_lora.yaml")
    parser.add_argument("--workload", type=Path, help="a folder made by make_workload.py (built if missing)")
    parser.add_argument("--runs", default="r1,r1_packing,r2")
    parser.add_argument("--size", help="override every run's model size (tiny for a smoke test)")
    parser.add_argument("--steps", type=int, help="stop each run after this many steps (default: one epoch)")
    parser.add_argument("--cpu", action="store_true", help="run without a GPU (checks the script only)")
    parser.add_argument("--anchor", action="store_true", help="then run shared/bench/anchor_gpu.sh (needs .whl)")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    options = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not options.cpu:
        print(json.dumps({"skipped": "no CUDA GPU: R1 throughput and memory are GPU figures"}))
        return 0
    bench = shared_bench(options.bench)
    options.out.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in options.runs.split(",") if n.strip()]
    work = Path(tempfile.mkdtemp(prefix="tunelab-r1-"))
    workload = options.workload or work / "workload"
    sizes = sorted({options.size or RUNS[n][0] for n in names})
    missing = [s for s in sizes if not (workload / f"model-{s}").is_dir()]
    if missing:
        make_workload(workload, ",".join(missing), n=2000, bench=bench)
    results = []
    for name in names:
        if options.size:
            RUNS[name] = (options.size, RUNS[name][1])
        result = run_tunelab(name, bench, workload, work, options.steps, options.cpu)
        result["mfu"] = mfu(result, options.peak_tflops, RUNS[name][1].get("finetuning_type") == "full")
        results.append(result)
        print(json.dumps(result), flush=True)
    if options.anchor:
        anchor = subprocess.run(["bash", str(bench / "anchor_gpu.sh"), str(workload), str(options.out)],
                                capture_output=True, text=True, cwd=REPO)
        for line in anchor.stdout.splitlines():
            if line.startswith("RESULT "):
                results.append({"tool": "anchor", **json.loads(line[len("RESULT "):])})
                print(json.dumps(results[-1]), flush=True)
    (options.out / "r1_results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
