"""tunelab against the anchor (LLaMA-Factory 0.9.5) on this CPU machine, side by side, same inputs.

    bash ../shared/bench/anchor_cpu_setup.sh /tmp/lfenv      # once: the anchor in its own venv
    python benchmarks/cpu_vs_anchor.py --anchor-python /tmp/lfenv/bin/python --repeats 2

Two measurements, each tool in a fresh process with a fresh data cache, alternating tools:

1. **The same YAML end to end**: R1 (`../shared/bench/reference_sft_lora.yaml`, LoRA SFT in the
   anchor's keys) on the workload's `small` Qwen2 shape, with the CPU-sized changes written below
   (`CPU_CHANGES`), run by `tunelab train` and `llamafactory-cli train`. Reported: wall time of the
   command, time from launch until the first optimizer step finished (the first `1/N` of the
   Trainer's progress bar), train_runtime, non-padding tokens/s and the final training loss. Each
   tool runs with its own defaults: the anchor pads and turns gradient checkpointing on; tunelab
   batches padding-free with the fused loss.
2. **Preprocessing throughput**: 20,000 alpaca examples of the same generator, tokenized with the
   real Qwen2.5 tokenizer (`../shared/fixtures/tokenizers/qwen2.5`), template qwen, cutoff 2048,
   through each tool's own data pipeline in-process (load JSON, convert, encode with the template);
   examples/s over the wall time of that call.

Prints one JSON summary (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _workload import REPO, make_workload

SHARED = REPO.parent / "shared"
QWEN_TOKENIZER = SHARED / "fixtures" / "tokenizers" / "qwen2.5"
#: R1 as it stands, except what a 2-core CPU needs: the small shape, fp32, fewer examples, 2 workers
CPU_CHANGES = {"bf16": False, "max_samples": 400, "cutoff_len": 1024, "preprocessing_num_workers": 2,
               "logging_steps": 10}
FIRST_STEP = re.compile(r"\b1/\d+ \[")

TUNELAB_DATA = r"""
import json, sys, time
t0 = time.perf_counter()
from tunelab.config.parser import parse_config
from tunelab.data.templates import get_template
from tunelab.model.load import load_tokenizer
from tunelab.train.data_prep import prepare_data
config = parse_config([f"--{k}={v}" for k, v in json.loads(sys.argv[1]).items()])
tokenizer = load_tokenizer(config.model, config.model.model_name_or_path)
template = get_template(config.data.template, tokenizer)
t1 = time.perf_counter()
prepared = prepare_data(config, tokenizer, template)
t2 = time.perf_counter()
print("RESULT " + json.dumps({"examples": len(prepared.train), "setup_s": t1 - t0, "data_s": t2 - t1}))
"""

ANCHOR_DATA = r"""
import json, sys, time
t0 = time.perf_counter()
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer
model_args, data_args, training_args, finetuning_args, _ = get_train_args(json.loads(sys.argv[1]))
tokenizer_module = load_tokenizer(model_args)
template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
t1 = time.perf_counter()
module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
t2 = time.perf_counter()
print("RESULT " + json.dumps({"examples": len(module["train_dataset"]), "setup_s": t1 - t0, "data_s": t2 - t1}))
"""


def run_timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, float | None]:
    """Run a training command; wall time, and when the progress bar first showed step 1 done."""
    start = time.perf_counter()
    first: list[float] = []
    with log.open("w") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink,
                                   stderr=subprocess.PIPE, text=True, bufsize=1)

        def watch() -> None:
            assert process.stderr is not None
            buffer = ""
            while True:
                piece = process.stderr.read(256)
                if not piece:
                    return
                sink.write(piece)
                buffer = (buffer + piece)[-512:]
                if not first and FIRST_STEP.search(buffer):
                    first.append(time.perf_counter() - start)

        reader = threading.Thread(target=watch)
        reader.start()
        code = process.wait()
        reader.join()
    if code != 0:
        raise SystemExit(f"{command[0]} failed with exit code {code}; see {log}")
    return {"wall_s": time.perf_counter() - start, "first_step_s": first[0] if first else None}


def train_results(output_dir: Path) -> dict[str, float | None]:
    results = json.loads((output_dir / "train_results.json").read_text())
    tokens = results.get("num_input_tokens_seen")
    if not tokens:  # the anchor logs it in the state's history
        state = json.loads((output_dir / "trainer_state.json").read_text())
        seen = [h["num_input_tokens_seen"] for h in state["log_history"] if h.get("num_input_tokens_seen")]
        tokens = seen[-1] if seen else None
    runtime = results.get("train_runtime")
    return {"train_runtime_s": runtime, "tokens": tokens, "train_loss": results.get("train_loss"),
            "tokens_per_s": tokens / runtime if tokens and runtime else None}


def r1_yaml(workload: Path, output_dir: Path) -> str:
    text = (SHARED / "bench" / "reference_sft_lora.yaml").read_text()
    text = text.replace("WORKLOAD/model-1.5b", str(workload / "model-small")).replace("WORKLOAD", str(workload))
    text = text.replace("OUTDIR", str(output_dir))
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() not in CPU_CHANGES]
    lines += [f"{key}: {str(value).lower() if isinstance(value, bool) else value}" for key, value in CPU_CHANGES.items()]
    return "\n".join(lines) + "\n"


def end_to_end(tool: str, workload: Path, work: Path, anchor_python: str, index: int) -> dict[str, object]:
    run_dir = work / f"{tool}-{index}"
    run_dir.mkdir(parents=True)
    cfg = run_dir / "r1_cpu.yaml"
    cfg.write_text(r1_yaml(workload, run_dir / "out"))
    env = {**os.environ, "TUNELAB_CACHE": str(run_dir / "cache"), "HF_DATASETS_CACHE": str(run_dir / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1"}
    if tool == "tunelab":
        command = [str(Path(sys.executable).with_name("tunelab")), "train", str(cfg)]
    else:
        command = [str(Path(anchor_python).with_name("llamafactory-cli")), "train", str(cfg)]
    figures = run_timed(command, env, run_dir / "log.txt")
    return {"tool": tool, **figures, **train_results(run_dir / "out")}


def preprocessing(tool: str, data_dir: Path, work: Path, anchor_python: str, index: int) -> dict[str, object]:
    run_dir = work / f"data-{tool}-{index}"
    run_dir.mkdir(parents=True)
    args = {"model_name_or_path": str(QWEN_TOKENIZER), "stage": "sft", "do_train": True, "dataset": "bench_alpaca",
            "dataset_dir": str(data_dir), "template": "qwen", "cutoff_len": 2048, "overwrite_cache": True,
            "preprocessing_num_workers": 2, "output_dir": str(run_dir / "out"), "report_to": "none",
            "finetuning_type": "lora"}
    env = {**os.environ, "TUNELAB_CACHE": str(run_dir / "cache"), "HF_DATASETS_CACHE": str(run_dir / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1"}
    python, child = (sys.executable, TUNELAB_DATA) if tool == "tunelab" else (anchor_python, ANCHOR_DATA)
    if tool == "tunelab":
        args["packing"] = False  # the anchor's sft default; the comparison is tokenization, not packing
    done = subprocess.run([python, "-c", child, json.dumps(args)], env=env, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{tool} preprocessing failed:\n{done.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    return {"tool": tool, **result, "examples_per_s": result["examples"] / result["data_s"]}


def summarise(runs: list[dict[str, object]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for tool in ("tunelab", "anchor"):
        mine = [r for r in runs if r["tool"] == tool]
        if mine:
            out[tool] = {k: statistics.median(float(r[k]) for r in mine if r.get(k) is not None) for k in keys
                         if any(r.get(k) is not None for r in mine)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchor-python", default="/tmp/lfenv/bin/python")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preprocess-examples", type=int, default=20000)
    parser.add_argument("--json", default="")
    parser.add_argument("--work", default="", help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    if not Path(args.anchor_python).exists():
        print(f"no anchor at {args.anchor_python}: run `bash ../shared/bench/anchor_cpu_setup.sh /tmp/lfenv` first",
              file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="tunelab-vs-anchor-"))
    make_workload(work / "workload", "small", n=2000)
    make_workload(work / "workload20k", "tiny", n=args.preprocess_examples)
    e2e, data = [], []
    for index in range(args.repeats):
        for tool in ("tunelab", "anchor") if index % 2 == 0 else ("anchor", "tunelab"):
            e2e.append(end_to_end(tool, work / "workload", work, args.anchor_python, index))
            print(json.dumps(e2e[-1]), flush=True)
            data.append(preprocessing(tool, work / "workload20k" / "data", work, args.anchor_python, index))
            print(json.dumps(data[-1]), flush=True)
    summary = {
        "end_to_end": summarise(e2e, ("wall_s", "first_step_s", "train_runtime_s", "tokens_per_s", "train_loss")),
        "preprocessing": summarise(data, ("examples", "data_s", "examples_per_s")),
        "runs": {"end_to_end": e2e, "preprocessing": data}, "cpu_changes_to_r1": CPU_CHANGES,
    }
    t, a = summary["end_to_end"].get("tunelab", {}), summary["end_to_end"].get("anchor", {})
    if t and a:
        summary["ratios"] = {
            "wall_anchor_over_tunelab": a["wall_s"] / t["wall_s"],
            "first_step_anchor_over_tunelab": a["first_step_s"] / t["first_step_s"],
            "tokens_per_s_tunelab_over_anchor": t["tokens_per_s"] / a["tokens_per_s"],
            "preprocessing_tunelab_over_anchor": (summary["preprocessing"]["tunelab"]["examples_per_s"]
                                                  / summary["preprocessing"]["anchor"]["examples_per_s"]),
        }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
