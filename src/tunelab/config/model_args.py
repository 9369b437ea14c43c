"""Keys that say which model to load and how: the anchor's names, meanings and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelArguments:
    """Base model, adapters, tokenizer, attention, quantization and inference backend."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Local folder or hub id of the base model."}
    )
    adapter_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Adapter folder(s), comma separated: merged in order before training or inference (LoRA only)."},
    )
    adapter_folder: str | None = field(default=None, metadata={"help": "Folder holding the adapter weights to load."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where models downloaded from a hub are stored."})
    use_fast_tokenizer: bool = field(default=True, metadata={"help": "Use the fast (Rust) tokenizer."})
    resize_vocab: bool = field(
        default=False, metadata={"help": "Resize the embeddings to the tokenizer's vocabulary (after adding tokens)."}
    )
    split_special_tokens: bool = field(
        default=False, metadata={"help": "Split special tokens during tokenization (slow tokenizers only)."}
    )
    new_special_tokens: str | None = field(
        default=None, metadata={"help": "Special tokens to add to the tokenizer, comma separated (older name of add_special_tokens)."}
    )
    add_tokens: str | None = field(default=None, metadata={"help": "Non-special tokens to add, comma separated."})
    add_special_tokens: str | None = field(default=None, metadata={"help": "Special tokens to add, comma separated."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a hub model."})
    low_cpu_mem_usage: bool = field(default=True, metadata={"help": "Load weights without a second copy in memory."})
    rope_scaling: Literal["linear", "dynamic", "yarn", "llama3"] | None = field(
        default=None, metadata={"help": "RoPE scaling strategy for contexts longer than the model's."}
    )
    flash_attn: Literal["auto", "disabled", "sdpa", "fa2", "fa3", "eager"] = field(
        default="auto",
        metadata={"help": "Attention implementation: auto picks the fastest available (flash-attention, then sdpa)."},
    )
    shift_attn: bool = field(default=False, metadata={"help": "LongLoRA shift short attention (not supported)."})
    mixture_of_depths: Literal["convert", "load"] | None = field(
        default=None, metadata={"help": "Mixture-of-depths conversion (not supported)."}
    )
    use_unsloth: bool = field(
        default=False,
        metadata={"help": "Anchor key for unsloth's LoRA kernels. tunelab's own fast path is always on; unsloth is used only if installed."},
    )
    use_unsloth_gc: bool = field(default=False, metadata={"help": "Unsloth-style offloaded gradient checkpointing."})
    enable_liger_kernel: bool | None = field(
        default=None,
        metadata={"help": "liger-kernel's fused RMSNorm / RoPE / SwiGLU / loss Triton kernels. Default: on with a CUDA GPU "
                          "and liger-kernel installed; true requires the package."},
    )
    moe_aux_loss_coef: float | None = field(default=None, metadata={"help": "Router auxiliary loss coefficient for MoE models."})
    disable_gradient_checkpointing: bool = field(default=False, metadata={"help": "Turn gradient checkpointing off."})
    use_reentrant_gc: bool = field(default=True, metadata={"help": "Use reentrant gradient checkpointing."})
    upcast_layernorm: bool = field(default=False, metadata={"help": "Keep layer norms in float32."})
    upcast_lmhead_output: bool = field(default=False, metadata={"help": "Compute the output head in float32."})
    train_from_scratch: bool = field(default=False, metadata={"help": "Randomly initialise the weights."})
    infer_backend: Literal["huggingface", "vllm", "sglang"] = field(
        default="huggingface", metadata={"help": "Inference engine."}
    )
    offload_folder: str = field(default="offload", metadata={"help": "Folder for offloaded weights."})
    use_cache: bool = field(default=True, metadata={"help": "Use the KV cache in generation."})
    use_kv_cache: bool = field(default=True, metadata={"help": "Use the KV cache in generation (newer anchor name)."})
    infer_dtype: Literal["auto", "float16", "bfloat16", "float32"] = field(
        default="auto", metadata={"help": "Weight dtype at inference."}
    )
    hf_hub_token: str | None = field(default=None, metadata={"help": "Hugging Face Hub token."})
    ms_hub_token: str | None = field(default=None, metadata={"help": "ModelScope Hub token."})
    om_hub_token: str | None = field(default=None, metadata={"help": "Modelers Hub token."})
    print_param_status: bool = field(default=False, metadata={"help": "Print each parameter's dtype, device and trainability."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model / tokenizer code shipped with the checkpoint. Off unless you trust it."}
    )
    quantization_method: Literal["bnb", "bitsandbytes", "hqq", "eetq", "gptq", "awq"] = field(
        default="bnb", metadata={"help": "On-the-fly quantization method (bitsandbytes)."}
    )
    quantization_bit: int | None = field(
        default=None, metadata={"help": "Quantize the base model to 4 or 8 bits while training (QLoRA, needs a CUDA GPU)."}
    )
    quantization_type: Literal["fp4", "nf4"] = field(default="nf4", metadata={"help": "4-bit data type."})
    double_quantization: bool = field(default=True, metadata={"help": "Quantize the quantization constants too."})
    quantization_device_map: Literal["auto"] | None = field(
        default=None, metadata={"help": "Device map for a quantized model at inference."}
    )
    vllm_maxlen: int = field(default=4096, metadata={"help": "vLLM: maximum sequence length (prompt + response)."})
    vllm_gpu_util: float = field(default=0.9, metadata={"help": "vLLM: share of GPU memory to use."})
    vllm_enforce_eager: bool = field(default=False, metadata={"help": "vLLM: disable CUDA graphs."})
    vllm_max_lora_rank: int = field(default=32, metadata={"help": "vLLM: largest LoRA rank to serve."})
    vllm_config: str | None = field(default=None, metadata={"help": "vLLM: extra engine arguments as JSON."})
    image_max_pixels: int = field(
        default=768 * 768,
        metadata={"help": "The maximum number of pixels of image inputs: larger pictures are scaled down, aspect kept."},
    )
    image_min_pixels: int = field(
        default=32 * 32,
        metadata={"help": "The minimum number of pixels of image inputs: smaller pictures are scaled up, aspect kept."},
    )
    image_do_pan_and_scan: bool = field(
        default=False, metadata={"help": "Use pan and scan to process images for Gemma 3 (extra crops of large pictures)."}
    )
    crop_to_patches: bool = field(
        default=False, metadata={"help": "Whether to crop images to patches (tiles) for InternVL."}
    )
    video_max_pixels: int = field(
        default=256 * 256, metadata={"help": "The maximum number of pixels of each video frame."}
    )
    video_min_pixels: int = field(default=16 * 16, metadata={"help": "The minimum number of pixels of each video frame."})
    video_fps: float = field(default=2.0, metadata={"help": "The frames to sample per second of video inputs."})
    video_maxlen: int = field(default=128, metadata={"help": "The maximum number of sampled frames of one video input."})
    use_audio_in_video: bool = field(
        default=False, metadata={"help": "Whether or not to use the audio track of video inputs (Qwen2.5-Omni)."}
    )
    audio_sampling_rate: int = field(
        default=16000, metadata={"help": "The sampling rate of audio inputs: audio is resampled to it (Hz)."}
    )

    def adapter_paths(self) -> list[str]:
        if not self.adapter_name_or_path:
            return []
        return [p.strip() for p in self.adapter_name_or_path.split(",") if p.strip()]

    def special_tokens_to_add(self) -> list[str]:
        names = ",".join(t for t in (self.new_special_tokens, self.add_special_tokens) if t)
        return [t.strip() for t in names.split(",") if t.strip()]
