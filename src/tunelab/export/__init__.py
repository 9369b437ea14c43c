"""`tunelab export`: merge adapters into the base model and write files other tools load unchanged.

One module per concept: `merge` (base + adapters, in order), `shards` (safetensors / legacy .bin
shards of at most `export_size` GB), `companions` (tokenizer with its chat template, generation
config, value head), `verify` (reload and compare logits with base + adapter), `modelfile` (Ollama),
`gguf_file` (llama.cpp), `gptq` (quantized export), `hub` (push), and `run`, which does them in order.
"""
