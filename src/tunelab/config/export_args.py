"""Keys of `tunelab export`: where, how large the shards, which device and format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ExportArguments:
    """Merged-model export settings, with the anchor's names and defaults."""

    export_dir: str | None = field(default=None, metadata={"help": "Folder to write the exported model to."})
    export_size: float = field(default=5, metadata={"help": "Largest shard size in GB (10^9 bytes); fractions allowed."})
    export_device: Literal["cpu", "auto"] = field(default="cpu", metadata={"help": "Device used to merge: cpu or auto (GPU)."})
    export_dtype: Literal["auto", "float16", "bfloat16", "float32"] = field(
        default="auto", metadata={"help": "tunelab: dtype of the exported weights; auto keeps the model's dtype."}
    )
    export_quantization_bit: int | None = field(default=None, metadata={"help": "Quantize the exported model (GPTQ) to this many bits."})
    export_quantization_dataset: str | None = field(default=None, metadata={"help": "Calibration data for export quantization."})
    export_quantization_nsamples: int = field(default=128, metadata={"help": "Calibration examples for export quantization."})
    export_quantization_maxlen: int = field(default=1024, metadata={"help": "Calibration sequence length."})
    export_legacy_format: bool = field(default=False, metadata={"help": "Write .bin files instead of safetensors."})
    export_format: Literal["native", "original"] = field(
        default="native", metadata={"help": "tunelab: for a remote-code family tunelab converts (docs/models.md): "
                                    "native (plain transformers, vLLM, GGUF) or original (its own layout and code files)."}
    )
    export_hub_model_id: str | None = field(default=None, metadata={"help": "Push the exported model to this hub repository."})
