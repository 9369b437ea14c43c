"""`do_predict` + `predict_with_generate`: generate answers for the eval prompts, score them, save both."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config
from tunelab.data.conversation import Example
from tunelab.data.templates.base import Template
from tunelab.eval.generation import generate_hf, generation_kwargs
from tunelab.eval.text_metrics import generation_metrics
from tunelab.train.run.outputs import write_json

logger = logging.getLogger("tunelab.train")


def predict(model: Any, tokenizer: Any, template: Template, examples: list[Example], config: Config, output_dir: str) -> dict[str, float]:
    """Greedy (or configured) generation over `examples`; writes generated_predictions.jsonl and predict_results.json."""
    from tunelab.data.encode import EncodeOptions, encode_unsupervised, stop_token_ids

    options = EncodeOptions.from_data_args(config.data)
    encoded = [encode_unsupervised(tokenizer, template, ex, options=options) for ex in examples]
    kwargs = generation_kwargs(config, tokenizer, stop_token_ids(tokenizer, template))
    batch_size = int(config.training_values.get("per_device_eval_batch_size", 8))
    model.eval()
    predictions = generate_hf(model, tokenizer, [e["input_ids"] for e in encoded], batch_size=batch_size,
                              gen_kwargs=kwargs)
    records = [{
        "prompt": tokenizer.decode(e["input_ids"], skip_special_tokens=False),
        "predict": predicted,
        "label": tokenizer.decode(e["labels"], skip_special_tokens=True).strip(),
    } for e, predicted in zip(encoded, predictions)]
    path = Path(output_dir) / "generated_predictions.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    metrics = generation_metrics([r["predict"] for r in records], [r["label"] for r in records])
    metrics = {f"predict_{k}": v for k, v in metrics.items()} | {"predict_samples": len(records)}
    write_json(Path(output_dir) / "predict_results.json", metrics)
    logger.info("predictions saved to %s; %s", path, ", ".join(f"{k}={v}" for k, v in metrics.items()))
    return metrics
