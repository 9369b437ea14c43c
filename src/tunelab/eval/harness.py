"""Bridge to lm-evaluation-harness (`lm_eval`): its tasks on the trained model, base plus adapter.

tunelab does not re-implement the harness's hundreds of tasks; it builds the harness's model
arguments from the config (so the model, adapter, dtype and trust_remote_code are the ones that
were trained) and stores the results beside the run. Without `lm_eval` installed, one message
says what to install.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config
from tunelab.errors import UserError, require_package

logger = logging.getLogger("tunelab.eval")

RESULTS_FILE = "harness_results.json"


def parse_tasks(text: str) -> list[str]:
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks:
        raise UserError("--harness needs task names, e.g. --harness hellaswag,arc_easy")
    return tasks


def harness_model_args(config: Config, model_path: str) -> dict[str, Any]:
    """The `hf` model arguments of lm_eval for this config: pretrained, peft, dtype, trust_remote_code."""
    margs = config.model
    args: dict[str, Any] = {"pretrained": model_path, "trust_remote_code": bool(margs.trust_remote_code)}
    adapters = margs.adapter_paths()
    if len(adapters) > 1:
        raise UserError("--harness evaluates one adapter; merge the others into the base first (`tunelab export`).")
    if adapters:
        args["peft"] = adapters[0]
    if margs.infer_dtype != "auto":
        args["dtype"] = margs.infer_dtype
    elif config.training_values.get("bf16"):
        args["dtype"] = "bfloat16"
    elif config.training_values.get("fp16"):
        args["dtype"] = "float16"
    if margs.model_revision and margs.model_revision != "main":
        args["revision"] = margs.model_revision
    if margs.cache_dir:
        args["cache_dir"] = margs.cache_dir
    return args


def results_dir(config: Config, model_path: str) -> Path:
    """save_dir; else the adapter folder (the run of a LoRA training); else a local model folder."""
    if config.evaluation.save_dir:
        return Path(config.evaluation.save_dir)
    adapters = config.model.adapter_paths()
    if adapters and Path(adapters[-1]).is_dir():
        return Path(adapters[-1])
    if Path(model_path).is_dir():
        return Path(model_path)
    raise UserError("save_dir is not set and the model is not a local folder: set save_dir for the harness results.")


def run_harness(config: Config, tasks: list[str]) -> dict[str, Any]:
    """Run the harness tasks; print its table; write harness_results.json beside the run."""
    require_package("lm_eval", "tunelab eval --harness", package="lm-eval")
    import lm_eval

    from tunelab.model.load import resolve_model_path

    model_path = resolve_model_path(config.model.model_name_or_path)
    evaluation = config.evaluation
    num_fewshot = evaluation.n_shot if "n_shot" in config.explicit else None
    limit = config.data.max_samples
    seed = int(evaluation.seed)
    results = lm_eval.simple_evaluate(
        model="hf", model_args=harness_model_args(config, model_path), tasks=tasks, num_fewshot=num_fewshot,
        batch_size=int(evaluation.batch_size), limit=limit, log_samples=False, random_seed=seed,
        numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
    )
    if results is None:  # non-zero ranks of a distributed run
        return {}
    try:
        from lm_eval.utils import make_table

        print(make_table(results))
    except ImportError:
        print(json.dumps(results.get("results", {}), indent=2, default=str))
    folder = results_dir(config, model_path)
    folder.mkdir(parents=True, exist_ok=True)
    kept = {key: results[key] for key in ("results", "groups", "versions", "n-shot", "configs", "config") if key in results}
    (folder / RESULTS_FILE).write_text(json.dumps(kept, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"harness results saved to {folder / RESULTS_FILE}")
    return dict(results)
