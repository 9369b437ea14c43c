"""On a CUDA GPU: QLoRA (4-bit and 8-bit), the bitsandbytes 8-bit / paged optimizers and TensorBoard
logging, each through `tunelab train` on a tiny Qwen2 model, with peak memory and the final loss.

usage: python benchmarks/gpu_training_features.py OUTDIR
Needs: a CUDA GPU, bitsandbytes and tensorboard (`pip install bitsandbytes tensorboard`).
Without CUDA it prints why and exits 0, so it can sit in any checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

RUNS: dict[str, dict[str, object]] = {
    "qlora-4bit-nf4": {"quantization_bit": 4, "quantization_type": "nf4", "bf16": True},
    "qlora-8bit": {"quantization_bit": 8, "bf16": True},
    "lora-adamw_bnb_8bit": {"optim": "adamw_bnb_8bit", "bf16": True},
    "lora-paged_adamw_8bit": {"optim": "paged_adamw_8bit", "bf16": True},
    "lora-tensorboard": {"report_to": "tensorboard", "bf16": True},
}


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU (QLoRA and the 8-bit optimizers need one)")
        return 0
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_features")
    out.mkdir(parents=True, exist_ok=True)
    from tunelab.testing import TinyModelSpec, build_tiny_model

    model = build_tiny_model(out / "model", family="qwen2", spec=TinyModelSpec(hidden_size=256, intermediate_size=704,
                                                                                num_hidden_layers=4, num_attention_heads=4,
                                                                                num_key_value_heads=2))
    results = {}
    for name, extra in RUNS.items():
        run_dir = out / name
        args = {"model_name_or_path": model, "stage": "sft", "do_train": True, "template": "qwen",
                "dataset": "alpaca_en_demo", "cutoff_len": 512, "per_device_train_batch_size": 4,
                "learning_rate": 1e-4, "max_steps": 30, "logging_steps": 5, "save_steps": 1000,
                "output_dir": run_dir, "overwrite_output_dir": True, "report_to": "none",
                "finetuning_type": "lora", "lora_target": "all", "logging_dir": run_dir / "tb", **extra}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tunelab.cli.main", "train", *[f"--{k}={v}" for k, v in args.items()]],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        record: dict[str, object] = {"exit": proc.returncode, "seconds": round(seconds, 1)}
        if proc.returncode == 0:
            log = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
            losses = [r["loss"] for r in log if "loss" in r]
            record |= {"first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}
            if extra.get("report_to") == "tensorboard":
                record["tensorboard_event_files"] = len(list((run_dir / "tb").rglob("events.out.tfevents.*")))
        else:
            record["error"] = proc.stderr.strip().splitlines()[-3:]
        results[name] = record
        print(name, json.dumps(record), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["exit"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
