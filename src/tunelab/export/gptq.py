"""GPTQ quantized export (`export_quantization_bit` and its calibration keys), through transformers.

GPTQ calibrates layer by layer on a CUDA GPU with the `gptqmodel` kernels; on a machine without
one the request fails before any weight loads, with the reason. The merged full-precision export is
written and verified first, then quantized in place: `export_dir` ends up holding the GPTQ model,
as the anchor's does.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from tunelab.config.resolved import Config
from tunelab.errors import UserError, require_package

logger = logging.getLogger("tunelab.export")

SUPPORTED_BITS = (2, 3, 4, 8)


def check_gptq_available(bits: int | None = None) -> None:
    """Refuse early: a CUDA GPU and the `gptqmodel` + `optimum` packages are needed."""
    import torch

    if bits is not None and bits not in SUPPORTED_BITS:
        raise UserError(f"export_quantization_bit={bits}: GPTQ quantizes to {', '.join(map(str, SUPPORTED_BITS))} bits.")
    if not torch.cuda.is_available():
        raise UserError("export_quantization_bit: GPTQ quantization needs a CUDA GPU, and none is visible. Export without "
                        "export_quantization_bit here and quantize on a GPU machine, or write a GGUF (--gguf f16).")
    require_package("gptqmodel", "GPTQ export (export_quantization_bit)", package="gptqmodel")
    require_package("optimum", "GPTQ export (export_quantization_bit)", package="optimum")


def calibration_texts(path: str, nsamples: int, seed: int = 0) -> list[str]:
    """`nsamples` texts from a json / jsonl file of {"text": ...} rows (the anchor's c4_demo format)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"export_quantization_dataset={path}: no such file; give a .json or .jsonl file of {{\"text\": ...}} rows.")
    raw = file.read_text(encoding="utf-8")
    rows = json.loads(raw) if file.suffix == ".json" else [json.loads(line) for line in raw.splitlines() if line.strip()]
    texts = [row["text"] for row in rows if isinstance(row, dict) and isinstance(row.get("text"), str) and row["text"].strip()]
    if not texts:
        raise UserError(f"export_quantization_dataset={path}: no rows with a non-empty \"text\" field.")
    random.Random(seed).shuffle(texts)
    return texts[:nsamples]


def quantize_export(config: Config, folder: Path) -> None:
    """Quantize the merged model in `folder` with GPTQ and write it back there."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTQConfig

    export = config.export
    check_gptq_available(export.export_quantization_bit)
    if not export.export_quantization_dataset:
        raise UserError("export_quantization_bit needs export_quantization_dataset (calibration texts, e.g. data/c4_demo.jsonl).")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = [tokenizer.decode(tokenizer.encode(t)[: export.export_quantization_maxlen])
             for t in calibration_texts(export.export_quantization_dataset, export.export_quantization_nsamples)]
    quantization = GPTQConfig(bits=export.export_quantization_bit, dataset=texts, tokenizer=tokenizer,
                              model_seqlen=export.export_quantization_maxlen)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map="auto")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    logger.info("quantized %s to %d bits with GPTQ on %d calibration texts", folder, export.export_quantization_bit, len(texts))
