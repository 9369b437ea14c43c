"""VLM SFT throughput: images/s, tokens/s and peak memory of `tunelab train` on picture data, padded
batches against padding-free ones.

    python benchmarks/vlm_sft.py --size tiny --steps 5          # CPU smoke test (tiny random Qwen2-VL)
    python benchmarks/vlm_sft.py --size 2b --steps 30           # GPU figures: Qwen2-VL-2B's shape, random init
    python benchmarks/vlm_sft.py --model DIR --template qwen2_vl # any local VLM folder

The data are synthetic: `--images` pictures of `--image-size` pixels (random noise, so no two share a
token cache line), one question and a two-sentence answer each, written as the anchor's mllm_demo
(sharegpt + `images`). Each variant trains in its own process (a clean CUDA allocator) with LoRA on
the language model (the default freeze keys) and reports what the run measured: train runtime,
images/s (pictures trained / runtime), tokens/s (`num_input_tokens_seen` / runtime, picture tokens
included), and peak memory (torch.cuda.max_memory_allocated on a GPU, the process's max RSS on CPU).
Prints one JSON summary (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, torch
from tunelab.config.parser import parse_config
from tunelab.train.recipe import run_training
args, images_per_step = json.loads(sys.argv[1]), int(sys.argv[2])
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
run = run_training(parse_config([f"--{k}={v}" for k, v in args.items()]))
m = run.metrics
runtime = float(m["train_runtime"])
steps = int(args["max_steps"])
out = {"train_runtime_s": runtime, "train_loss": m.get("train_loss"),
       "images_per_s": steps * images_per_step / runtime, "tokens_per_s": m["num_input_tokens_seen"] / runtime,
       "tokens_seen": m["num_input_tokens_seen"]}
if torch.cuda.is_available():
    out["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
else:
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print("RESULT " + json.dumps(out))
"""

# Qwen2-VL-2B-Instruct's shape (config.json of the published model), random weights
QWEN2_VL_2B = {
    "text_config": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
                    "num_key_value_heads": 2, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
                    "tie_word_embeddings": True},
    "vision_config": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
}


def build_model(size: str, folder: Path) -> Path:
    """A Qwen2-VL folder: the test kit's tiny one, or the 2B shape with the same tokenizer and processor."""
    from tunelab.testing_multimodal import build_tiny_vlm

    build_tiny_vlm("qwen2_vl", folder)
    if size == "tiny":
        return folder
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    text = {**config.text_config.to_dict(), **QWEN2_VL_2B["text_config"]}
    vision = {**config.vision_config.to_dict(), **QWEN2_VL_2B["vision_config"]}
    big = transformers.Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=config.image_token_id,
                                     video_token_id=config.video_token_id,
                                     vision_start_token_id=config.vision_start_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = transformers.Qwen2VLForConditionalGeneration(big).to(torch.bfloat16)
    model.save_pretrained(folder)
    processor_config = folder / "processor_config.json"  # realistic picture sizes: up to 448 x 448
    data = json.loads(processor_config.read_text())
    image = data.get("image_processor", data)
    image["min_pixels"], image["max_pixels"] = 56 * 56, 448 * 448
    image["size"] = {"shortest_edge": 56 * 56, "longest_edge": 448 * 448}
    processor_config.write_text(json.dumps(data, indent=2))
    return folder


def write_data(folder: Path, images: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(images):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
        rows.append({"messages": [{"role": "user", "content": "<image>Describe this picture."},
                                  {"role": "assistant", "content": f"Picture {index} is random noise. It has no subject."}],
                     "images": [f"{index}.png"]})
    (folder / "bench_mm.json").write_text(json.dumps(rows))
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    (folder / "dataset_info.json").write_text(json.dumps({"bench_mm": {
        "file_name": "bench_mm.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
        "tags": tags}}))
    return folder


def run_variant(model: Path, data: Path, out: Path, template: str, steps: int, batch: int, padding_free: bool,
                workers: int) -> dict[str, object]:
    import torch

    gpu = torch.cuda.is_available()
    args = {"model_name_or_path": model, "stage": "sft", "do_train": True, "finetuning_type": "lora", "lora_target": "all",
            "dataset": "bench_mm", "dataset_dir": data, "template": template, "check_template": False,
            "cutoff_len": 4096, "per_device_train_batch_size": batch, "max_steps": steps, "learning_rate": 1e-4,
            "logging_steps": 1, "save_strategy": "no", "report_to": "none", "output_dir": out,
            "overwrite_output_dir": True, "bf16": gpu, "padding_free": padding_free,
            "dataloader_num_workers": workers, "overwrite_cache": True}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps({k: str(v) for k, v in args.items()}), str(batch)],
                          capture_output=True, text=True, cwd=REPO)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"variant failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "2b"), default="tiny")
    parser.add_argument("--model", help="a local VLM folder instead of a built Qwen2-VL")
    parser.add_argument("--template", default="qwen2_vl")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunelab-vlm-bench-") as tmp:
        root = Path(tmp)
        model = Path(args.model) if args.model else build_model(args.size, root / "model")
        data = write_data(root / "data", args.images, args.image_size)
        results = {"model": str(args.model or f"qwen2_vl-{args.size}"), "steps": args.steps, "batch": args.batch,
                   "image_size": args.image_size}
        for name, free in (("padded", False), ("padding_free", True)):
            results[name] = run_variant(model, data, root / f"out-{name}", args.template, args.steps, args.batch, free,
                                        args.workers)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
