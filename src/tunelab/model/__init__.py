"""Model loading, tuning methods (full / freeze / LoRA family) and the tiny built-in models."""
