"""The tutorials' own config files, word for word but the paths, shared by every test that runs them.

One copy here instead of one per test folder (the CLI, tutorial and config-fuzz tests all read them);
pytest puts `tests/` on the import path (tests/conftest.py), and tests/config/fuzz_config.py adds it
when run as a script.
"""

from __future__ import annotations

# Seed 000 (cust/train_llama3_lora_sft.yaml), word for word but the model path; fp16: false is the CPU change.
SEED_000_TRAIN = """\
cutoff_len: 1024
dataset: fintech,identity
dataset_dir: data
do_train: true
finetuning_type: lora
flash_attn: auto
fp16: {fp16}
gradient_accumulation_steps: 8
learning_rate: 0.0002
logging_steps: 5
lora_alpha: 16
lora_dropout: 0
lora_rank: 8
lora_target: q_proj,v_proj
lr_scheduler_type: cosine
max_grad_norm: 1.0
max_samples: 1000
model_name_or_path: {model}
num_train_epochs: 10.0
optim: adamw_torch
output_dir: saves/LLaMA3-8B-Chinese-Chat/lora/train_2024-05-25-20-27-47
packing: false
per_device_train_batch_size: 2
plot_loss: true
preprocessing_num_workers: 16
report_to: none
save_steps: 100
stage: sft
template: llama3
use_unsloth: true
warmup_steps: 0
"""

# seed 001's own inference and merge files (model and adapter paths as the tutorial writes them)
SEED_001_INFERENCE = """model_name_or_path: ./telechat_7B
adapter_name_or_path: saves/telechat_7B_lora
template: telechat
infer_backend: huggingface  # choices: [huggingface, vllm]
"""
SEED_001_MERGE = """### Note: DO NOT use quantized model or quantization_bit when merging lora adapters
### model
model_name_or_path: ./telechat_7B
adapter_name_or_path: saves/telechat_7B_lora
template: telechat
finetuning_type: lora

### export
export_dir: models/telechat_7B_lora
export_size: 2
export_device: cpu
export_legacy_format: false
"""
