"""Generation-based evaluation of a data set: answers generated in batches, scored against the
references (BLEU-4, ROUGE-1/2/L, exact match), plus the data set's perplexity.

The same metrics as training's `do_predict` (tunelab.eval.text_metrics), without a training run:
`tunelab eval cfg.yaml` with `eval_dataset` (or `dataset`) and no `task`. `infer_backend: vllm`
generates with vLLM when it is installed; otherwise Hugging Face `generate`, left padded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.config.generating_args import GENERATION_KEYS
from tunelab.config.resolved import Config
from tunelab.config.stages import DataKind, stage_reading
from tunelab.data.batching import pad_left
from tunelab.errors import UserError, require_package

logger = logging.getLogger("tunelab.eval")

PREDICTIONS_FILE = "generated_predictions.jsonl"
RESULTS_FILE = "predict_results.json"


def generation_kwargs(config: Config, tokenizer: Any, stop_ids: list[int]) -> dict[str, Any]:
    """generate() arguments of `do_predict` and `tunelab eval`: only the generating keys the user set
    override the model's own generation_config."""
    gen = config.generating
    kwargs: dict[str, Any] = {"eos_token_id": stop_ids, "pad_token_id": tokenizer.pad_token_id}
    kwargs.update({k: getattr(gen, k) for k in GENERATION_KEYS if k in config.explicit})
    kwargs.setdefault("max_new_tokens", gen.max_new_tokens)
    if config.data.eval_num_beams:
        kwargs["num_beams"] = config.data.eval_num_beams
    return kwargs


def generate_hf(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], *, batch_size: int,
                gen_kwargs: dict[str, Any]) -> list[str]:
    """Decoded continuations of every prompt, `batch_size` at a time (left padded so all end together)."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    texts: list[str] = []
    for start in range(0, len(prompts), max(batch_size, 1)):
        ids, mask = pad_left(prompts[start : start + max(batch_size, 1)], pad)
        width = ids.shape[1]
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **gen_kwargs)
        texts += [tokenizer.decode(row[width:].tolist(), skip_special_tokens=True).strip() for row in out]
    return texts


def generate_vllm(config: Config, model_path: str, prompts: Sequence[Sequence[int]], tokenizer: Any,
                  stop_ids: list[int]) -> list[str]:
    """The same continuations through vLLM (one engine, all prompts at once; LoRA served unmerged)."""
    require_package("vllm", "infer_backend: vllm", extra="vllm")
    from vllm import LLM, SamplingParams

    margs, gen = config.model, config.generating
    adapters = margs.adapter_paths()
    if len(adapters) > 1:
        raise UserError("infer_backend: vllm serves one adapter; merge the others first (`tunelab export`).")
    engine_args: dict[str, Any] = {"model": model_path, "trust_remote_code": margs.trust_remote_code,
                                   "max_model_len": margs.vllm_maxlen, "gpu_memory_utilization": margs.vllm_gpu_util,
                                   "enforce_eager": margs.vllm_enforce_eager, "enable_lora": bool(adapters)}
    if margs.infer_dtype != "auto":
        engine_args["dtype"] = margs.infer_dtype
    if adapters:
        engine_args["max_lora_rank"] = margs.vllm_max_lora_rank
    if margs.vllm_config:
        engine_args.update(json.loads(margs.vllm_config) if isinstance(margs.vllm_config, str) else margs.vllm_config)
    sampling = SamplingParams(
        temperature=gen.temperature if gen.do_sample else 0.0, top_p=gen.top_p if gen.do_sample else 1.0,
        top_k=gen.top_k if gen.do_sample else -1, repetition_penalty=gen.repetition_penalty,
        max_tokens=gen.max_new_tokens, stop_token_ids=stop_ids, skip_special_tokens=True,
    )
    lora = None
    if adapters:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, adapters[0])
    outputs = LLM(**engine_args).generate([{"prompt_token_ids": list(p)} for p in prompts], sampling, lora_request=lora)
    return [o.outputs[0].text.strip() for o in outputs]


def output_dir_of(config: Config) -> Path:
    """save_dir, else the training output_dir; generation results always land in a named folder."""
    folder = config.evaluation.save_dir or config.training_values.get("output_dir")
    if not folder:
        raise UserError("save_dir is not set: name the folder for generated_predictions.jsonl and predict_results.json.")
    return Path(folder)


def load_eval_examples(config: Config) -> list[Any]:
    """`eval_dataset` when set, else every example of `dataset` (max_samples applies)."""
    from tunelab.data.loader import load_examples

    data = config.data
    if not (data.eval_dataset_names() or data.dataset_names()):
        raise UserError("generation evaluation needs a data set: set eval_dataset (or dataset), or set task for a benchmark.")
    split = "eval" if data.eval_dataset_names() else "train"
    examples = load_examples(data, stage_reading(DataKind.CHAT), split, seed=int(config.evaluation.seed))
    examples = [ex for ex in examples if ex.text is None]
    if not examples:
        raise UserError("the evaluation data set has no conversations to answer.")
    return examples


def write_predictions(path: Path, prompts: Sequence[str], predictions: Sequence[str], labels: Sequence[str]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for prompt, predict, label in zip(prompts, predictions, labels, strict=True):
            handle.write(json.dumps({"prompt": prompt, "predict": predict, "label": label}, ensure_ascii=False) + "\n")


def run_generation_eval(config: Config) -> dict[str, float]:
    """Generate, score, measure perplexity; write the predictions file and the metrics JSON."""
    import transformers

    from tunelab.data.encode import EncodeOptions, encode_unsupervised, stop_token_ids
    from tunelab.eval.fewshot_template import wants_builtin_fewshot
    from tunelab.eval.model_setup import load_eval_model
    from tunelab.eval.perplexity import dataset_perplexity
    from tunelab.eval.text_metrics import generation_metrics

    if wants_builtin_fewshot(config.data.template):
        raise UserError("template: 'fewshot' is for benchmarks (task: ...); name the model's chat template to generate.")
    out_dir = output_dir_of(config)
    transformers.set_seed(int(config.evaluation.seed))
    examples = load_eval_examples(config)
    loaded = load_eval_model(config)
    tokenizer, template = loaded.tokenizer, loaded.template
    options = EncodeOptions.from_data_args(config.data)
    encoded = [encode_unsupervised(tokenizer, template, ex, options=options) for ex in examples]
    prompts = [e["input_ids"] for e in encoded]
    labels = [tokenizer.decode(e["labels"], skip_special_tokens=True).strip() for e in encoded]
    stops = stop_token_ids(tokenizer, template)
    batch_size = int(config.evaluation.batch_size)
    if config.model.infer_backend == "vllm":
        predictions = generate_vllm(config, loaded.model_path, prompts, tokenizer, stops)
    else:
        predictions = generate_hf(loaded.model, tokenizer, prompts, batch_size=batch_size,
                                  gen_kwargs=generation_kwargs(config, tokenizer, stops))
    metrics: dict[str, float] = {f"predict_{k}": v for k, v in generation_metrics(predictions, labels).items()}
    ppl, tokens = dataset_perplexity(loaded.model, tokenizer, template, examples, options=options, batch_size=batch_size)
    metrics |= {"predict_perplexity": round(ppl, 4), "predict_perplexity_tokens": tokens, "predict_samples": len(examples)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / PREDICTIONS_FILE, [tokenizer.decode(p) for p in prompts], predictions, labels)
    (out_dir / RESULTS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    for key, value in metrics.items():
        print(f"{key:>28}: {value}")
    print(f"predictions saved to {out_dir / PREDICTIONS_FILE}; metrics to {out_dir / RESULTS_FILE}")
    return metrics
