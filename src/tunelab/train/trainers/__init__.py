"""The transformers.Trainer subclasses the stages build on: base (token count, LoRA+, atomic saves), metrics, reference."""
