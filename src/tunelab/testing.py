"""Test kit: tiny random-initialised causal LMs of real architectures, paired with real tokenizers.

Every test of a later layer (templates, training, export, inference) needs a model that loads like a
real one but trains in seconds on 2 CPU cores. These builders write such a model to disk, with the
tokenizer from `shared/fixtures/tokenizers/` so token ids are those of the real family.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# family name -> (transformers config class name, default fixture tokenizer)
FAMILIES: dict[str, tuple[str, str]] = {
    "qwen2": ("Qwen2Config", "qwen2.5"),
    "qwen3": ("Qwen3Config", "qwen3"),
    "llama": ("LlamaConfig", "deepseek-v3"),
}


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a tiny model: small enough to train in seconds, deep enough to test freeze / LoRA."""

    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True


def shared_dir() -> Path:
    """The project's read-only `shared/` folder: $TUNELAB_SHARED, or `../shared` beside the checkout."""
    env = os.environ.get("TUNELAB_SHARED")
    if env:
        return Path(env)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            candidate = parent / "shared" / "fixtures" / "tokenizers"
            if candidate.is_dir():
                return candidate.parent.parent
    raise FileNotFoundError("shared/fixtures/tokenizers not found; set TUNELAB_SHARED to the shared folder")


def legacy_fixture_path(family: str) -> Path:
    """A tutorial family's tiny checkpoint in its original remote-code layout (`shared/fixtures/legacy/`)."""
    return shared_dir() / "fixtures" / "legacy" / family


def fixture_tokenizer_path(name: str) -> Path:
    """Path of a real tokenizer in shared/fixtures/tokenizers (qwen2.5, qwen3, deepseek-v3)."""
    path = shared_dir() / "fixtures" / "tokenizers" / name
    if not path.is_dir():
        raise FileNotFoundError(f"no fixture tokenizer named {name!r} at {path}")
    return path


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    family: str = "qwen2",
    tokenizer: str | os.PathLike[str] | None = None,
    spec: TinyModelSpec | None = None,
    seed: int = 0,
) -> Path:
    """Write a random-initialised `family` model and its tokenizer to `out_dir`; return the folder.

    `tokenizer` is a fixture name or a folder; the embedding size equals the tokenizer's length so
    every id it produces is valid.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    config_class_name, default_tokenizer = FAMILIES[family]
    spec = spec or TinyModelSpec()
    tok_source = tokenizer or default_tokenizer
    tok_path = Path(tok_source) if Path(tok_source).is_dir() else fixture_tokenizer_path(str(tok_source))
    tok = AutoTokenizer.from_pretrained(tok_path)
    config_class = getattr(transformers, config_class_name)
    config = config_class(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
